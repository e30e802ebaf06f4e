// Runs the `instaflow` command line in-process with captured output, and checks the one-line user-error contract.
namespace InstaFlow.Tests.Cli;

public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = InstaFlow.Cli.Cli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>Asserts exit code 2 and a single `error: ...` line (no stack trace) containing every fragment.</summary>
    public static string AssertUserError(string[] args, params string[] fragments)
    {
        var (code, _, err) = Run(args);
        Assert.True(code == 2, $"expected exit code 2, got {code}; stderr: {err}");
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1 && lines[0].StartsWith("error: ", StringComparison.Ordinal), $"expected one error line, got: {err}");
        foreach (var f in fragments) Assert.Contains(f, err);
        return err;
    }
}
