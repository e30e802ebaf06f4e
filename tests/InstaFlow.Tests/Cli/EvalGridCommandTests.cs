// `instaflow eval grid` on the tiny SD-1.5 fixture: a captioned grid PNG of the right size, and one-line errors.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Cli;

public sealed class EvalGridCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-grid-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    [Fact]
    public void EvalGrid_TwoPromptsTwoSeeds_WritesCaptionedGrid()
    {
        var path = Path.Combine(_tmp, "grid.png");
        var (code, stdout, err) = CliRunner.Run("eval", "grid", "--model", Tiny, "--prompts", "a cat; a dog", "--seeds", "2", "--scale", "1", "-o", path);
        Assert.True(code == 0, err);
        Assert.Contains("row 2: a dog", stdout);
        var png = Png.Read(path);
        var tiny = new RectifiedFlowPipeline(RectifiedFlowPipelineTests.Model);
        int cw = tiny.DefaultWidth, ch = tiny.DefaultHeight;
        Assert.Equal(2 * (cw + 4) + 4, png.Width);
        Assert.Equal(4 + 2 * (ch + 4 + BitmapFont.LineHeight + 4), png.Height);
    }

    [Fact]
    public void EvalGrid_NoPrompts_OneLineError() =>
        CliRunner.AssertUserError(["eval", "grid", "--model", Tiny, "--prompts", " ; ", "-o", Path.Combine(_tmp, "x.png")], "--prompts");

    [Fact]
    public void EvalGrid_ZeroSeeds_OneLineError() =>
        CliRunner.AssertUserError(["eval", "grid", "--model", Tiny, "--prompts", "a cat", "--seeds", "0", "-o", Path.Combine(_tmp, "x.png")], "--seeds");
}
