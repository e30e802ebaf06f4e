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

    // Options shared between commands (ModelOptions, ImageOptions, ...) must not collide with a command's own: the
    // parser keeps one of two same-named options and the other's values then fail to parse (reflow's --ema once did).
    [Fact]
    public void Commands_EveryOptionNameAndAlias_IsUniqueWithinItsCommand()
    {
        var problems = new List<string>();
        void Walk(System.CommandLine.Command c, string path)
        {
            var seen = new Dictionary<string, int>();
            foreach (var o in c.Options)
                foreach (var name in o.Aliases.Append(o.Name)) seen[name] = seen.GetValueOrDefault(name) + 1;
            problems.AddRange(seen.Where(kv => kv.Value > 1).Select(kv => $"{path}: {kv.Key} x{kv.Value}"));
            foreach (var sub in c.Subcommands) Walk(sub, path + " " + sub.Name);
        }
        Walk(InstaFlow.Cli.Cli.BuildRoot(), "instaflow");
        Assert.True(problems.Count == 0, "duplicate options: " + string.Join("; ", problems));
    }
}
