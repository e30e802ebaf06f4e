// Command tree. User errors print one line to stderr and exit 2; only bugs show a stack trace.
using System.CommandLine;

namespace InstaFlow.Cli;

public static class Cli
{
    public static int Run(string[] args)
    {
        var root = new RootCommand("InstaFlow.NET: one-step text-to-image with Rectified Flow");
        foreach (var c in Commands()) root.Subcommands.Add(c);
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>Errors that describe bad input (files, options, shapes) rather than a bug in the program.</summary>
    public static bool IsUserError(Exception e) => e is UserException or FileNotFoundException or DirectoryNotFoundException
        or InvalidDataException or ArgumentException or FormatException or NotSupportedException or UnauthorizedAccessException;

    /// <summary>Each command family registers itself here.</summary>
    private static IEnumerable<Command> Commands()
    {
        yield return BenchCommand.Create();
    }
}

/// <summary>An error caused by the user's input (bad file, bad option): printed as one line, no stack trace.</summary>
public sealed class UserException(string message) : Exception(message);
