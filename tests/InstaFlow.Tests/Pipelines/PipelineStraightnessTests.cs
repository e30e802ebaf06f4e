// Straightness of the tiny SD-1.5 pipeline's flow per prompt: finite, non-negative figures from generate's noise that
// differ between prompts, the one-step refusal, and the CLI table (S itself is checked against exact cases in Flow).
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Pipelines;

public class PipelineStraightnessTests
{
    [Fact]
    public void Measure_TinyPipeline_OneRowPerPromptWithFiniteFigures()
    {
        var rows = PipelineStraightness.Measure(RectifiedFlowPipelineTests.Model, ["a photo of a cat", "a red car"], 4, 2f, null, 3);
        Assert.Equal(2, rows.Count);
        foreach (var r in rows)
        {
            Assert.True(double.IsFinite(r.Straightness) && r.Straightness > 0, $"S = {r.Straightness}");
            Assert.True(r.TransportCost > 0, $"transport cost {r.TransportCost}");
            Assert.Equal(4, r.ExtrapolationErrors.Length);
            Assert.All(r.ExtrapolationErrors, e => Assert.True(double.IsFinite(e) && e >= 0));
        }
        Assert.NotEqual(rows[0].Straightness, rows[1].Straightness);
        Assert.Throws<InvalidInputException>(() => PipelineStraightness.Measure(RectifiedFlowPipelineTests.Model, ["a cat"], 1, 0f, null, 0));
    }

    [Fact]
    public void StraightnessCli_TinyModel_PrintsTableAndMean()
    {
        var (code, stdout, err) = InstaFlow.Tests.Cli.CliRunner.Run("straightness", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--prompts", "a cat; a dog", "--steps", "4");
        Assert.True(code == 0, err);
        Assert.Contains("| a dog |", stdout);
        Assert.Contains("mean S over 2 prompts", stdout);
        InstaFlow.Tests.Cli.CliRunner.AssertUserError(["straightness", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--prompts", "a cat", "--steps", "1"], "at least 2");
    }
}
