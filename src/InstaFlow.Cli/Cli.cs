// Command tree. User errors print one line to stderr and exit 2; only bugs show a stack trace.
using System.CommandLine;

namespace InstaFlow.Cli;

public static class Cli
{
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        CliIO.Use(stdout ?? Console.Out, stderr ?? Console.Error);
        var root = new RootCommand("InstaFlow.NET: one-step text-to-image with Rectified Flow");
        foreach (var c in Commands()) root.Subcommands.Add(c);
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserError(e))
        {
            CliIO.Err.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>Errors that describe bad input (files, options, shapes) rather than a bug in the program.</summary>
    public static bool IsUserError(Exception e) => e is UserException or FileNotFoundException or DirectoryNotFoundException
        or InvalidDataException or ArgumentException or FormatException or NotSupportedException or UnauthorizedAccessException;

    /// <summary>Each command family registers itself here.</summary>
    private static IEnumerable<Command> Commands()
    {
        yield return GenerateCommand.Create();
        yield return InvertCommand.Create();
        yield return StraightnessCommand.Create();
        yield return ServeCommand.Create();
        yield return SampleCommand.Create();
        yield return TripletsCommand.Create();
        yield return ReflowCommand.Create();
        yield return TokenizeCommand.Create();
        yield return DataCommand.Create();
        yield return ExperimentCommand.Create();
        yield return BenchCommand.Create();
        yield return TrainCommand.Create();
        yield return EvalCommand.Create();
    }
}

/// <summary>Where commands print: the console, or writers a test passes to Cli.Run (per async flow, so tests may run in parallel).</summary>
public static class CliIO
{
    private static readonly AsyncLocal<(TextWriter Out, TextWriter Err)?> Current = new();

    public static TextWriter Out => Current.Value?.Out ?? Console.Out;
    public static TextWriter Err => Current.Value?.Err ?? Console.Error;

    public static void Use(TextWriter stdout, TextWriter stderr) => Current.Value = (stdout, stderr);

    /// <summary>
    /// True when Err is the process's stderr and that is a terminal: only then may a command redraw lines in place.
    /// A test's writer, a pipe or a log file gets plain lines.
    /// </summary>
    public static bool ErrIsTerminal =>
        ReferenceEquals(Err, Console.Error) && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb";
}

/// <summary>An error caused by the user's input (bad file, bad option): printed as one line, no stack trace.</summary>
public sealed class UserException(string message) : Exception(message);
