// The error contract of the command line: parse errors and bad input are plain `error:` lines with exit code 2; only
// the library's input exception (and file-system "not found" errors) count as bad input, so a shape bug thrown as an
// ArgumentException is reported as a bug with its stack trace.
namespace InstaFlow.Tests.Cli;

public class CliErrorTests
{
    [Theory]
    [InlineData(new[] { "generate", "a cat", "--steps", "many" }, "many")]
    [InlineData(new[] { "generate", "a cat", "--no-such-option" }, "--no-such-option")]
    [InlineData(new[] { "no-such-command" }, "no-such-command")]
    public void Parse_BadArguments_PlainErrorLinesAndExitCode2(string[] args, string fragment)
    {
        var (code, _, err) = CliRunner.Run(args);
        Assert.True(code == 2, $"expected exit code 2, got {code}; stderr: {err}");
        Assert.StartsWith("error: ", err);
        Assert.Contains(fragment, err);
        Assert.DoesNotContain("System.", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void IsUserError_InputExceptionYes_ArgumentExceptionNo()
    {
        Assert.True(InstaFlow.Cli.Cli.IsUserError(new InvalidInputException("x.json: bad key")));
        Assert.True(InstaFlow.Cli.Cli.IsUserError(new FileNotFoundException("no such file")));
        Assert.True(InstaFlow.Cli.Cli.IsUserError(new InstaFlow.Cli.UserException("--batch 0")));
        Assert.False(InstaFlow.Cli.Cli.IsUserError(new ArgumentException("Ops.Add: shapes [2] and [3] differ")));
        Assert.False(InstaFlow.Cli.Cli.IsUserError(new InvalidOperationException("bug")));
    }

    [Fact]
    public void Generate_StepsOutOfRange_OneLineInputError()
    {
        CliRunner.AssertUserError(["generate", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "a cat", "--steps", "0", "-o", Path.Combine(Path.GetTempPath(), "never.png")],
            "--steps must be between 1 and 1000");
    }
}
