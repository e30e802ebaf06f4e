// Command tree. Parse and user errors print one line to stderr and exit 2; a bug prints its stack trace, writes it to a
// crash log and exits 70.
using System.CommandLine;

namespace InstaFlow.Cli;

public static class Cli
{
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        int code = RunCommand(args, stdout, stderr);
        CliWorld.Finish(code);
        return code;
    }

    private static int RunCommand(string[] args, TextWriter? stdout, TextWriter? stderr)
    {
        CliIO.Use(stdout ?? Console.Out, stderr ?? Console.Error);
        var parsed = BuildRoot().Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // plain words and exit code 2, as for every other user error (not the parser's exit code 1)
            foreach (var e in parsed.Errors) CliIO.Err.WriteLine($"error: {Plain(e.Message)}");
            CliIO.Err.WriteLine($"see: instaflow {string.Join(' ', CommandPath(parsed))} --help");
            return 2;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserError(e))
        {
            CliIO.Err.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug: one line, where the full report is, and the stack trace itself (never hidden).
            var log = WriteCrashLog(args, e);
            CliIO.Err.WriteLine($"error: {e.GetType().Name}: {e.Message}");
            CliIO.Err.WriteLine($"this is a bug in InstaFlow.NET, not a problem with your input; please report it with {log ?? "the trace below"}");
            CliIO.Err.WriteLine(e.ToString());
            return 70;
        }
    }

    /// <summary>The command tree.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("InstaFlow.NET: one-step text-to-image with Rectified Flow");
        foreach (var c in Commands()) root.Subcommands.Add(c);
        return root;
    }

    /// <summary>Errors that describe bad input (files, options, requests) rather than a bug in the program.</summary>
    public static bool IsUserError(Exception e) => e is UserException or InvalidInputException or FileNotFoundException or DirectoryNotFoundException
        or InvalidDataException or NotSupportedException or UnauthorizedAccessException or PathTooLongException;

    /// <summary>The parser's message with .NET type names said in words ("as expected type 'System.Int32'" -> "as a whole number").</summary>
    internal static string Plain(string message) => System.Text.RegularExpressions.Regex.Replace(message, @" as expected type '([^']*)'", m =>
        m.Groups[1].Value switch
        {
            var t when t.Contains("Int32") || t.Contains("Int64") || t.Contains("UInt64") => " as a whole number",
            var t when t.Contains("Single") || t.Contains("Double") => " as a number",
            var t when t.Contains("Boolean") => " as true or false",
            _ => "",
        });

    private static IEnumerable<string> CommandPath(ParseResult parsed)
    {
        var names = new List<string>();
        for (var r = parsed.CommandResult; r != null && r.Parent != null; r = r.Parent as System.CommandLine.Parsing.CommandResult) names.Insert(0, r.Command.Name);
        return names;
    }

    /// <summary>The trace and the arguments in a file under the temp folder; null when even that fails.</summary>
    private static string? WriteCrashLog(string[] args, Exception e)
    {
        try
        {
            var path = Path.Combine(Path.GetTempPath(), $"instaflow-crash-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
            // CreateNew (O_EXCL): a file or symlink planted under this predictable name in the shared temp folder is
            // refused rather than followed, so a crash never clobbers another file.
            using var log = new StreamWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write));
            log.Write($"instaflow {string.Join(' ', args)}\n{typeof(Cli).Assembly.GetName().Version}\n{e}\n");
            return path;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Each command family registers itself here.</summary>
    private static IEnumerable<Command> Commands()
    {
        yield return GenerateCommand.Create();
        yield return RefineCommand.Create();
        yield return InvertCommand.Create();
        yield return StraightnessCommand.Create();
        yield return ServeCommand.Create();
        yield return SampleCommand.Create();
        yield return TripletsCommand.Create();
        yield return ReflowCommand.Create();
        yield return ConvertCommand.Create();
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
