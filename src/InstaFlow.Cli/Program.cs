// The `instaflow` command line: parses arguments and calls the library; holds no math.
using InstaFlow.Cli;

return Cli.Run(args);
