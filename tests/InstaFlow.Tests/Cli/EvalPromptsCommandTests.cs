// `instaflow eval prompts`: one table row per prompt and seed with the shipped classifier's verdict, and a one-line
// error when the model has no classifier; TwemojiClassifier.Classify agrees with Apply.
using InstaFlow.Cli;
using InstaFlow.Evaluation;
using InstaFlow.Tensors;

using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Cli;

public class EvalPromptsCommandTests
{
    private static string Shipped => Path.Combine(TestUtil.RepoRoot, ModelLocator.DefaultModelFolder);

    [Fact]
    public void EvalPrompts_ShippedModel_OneRowPerPromptAndSeed()
    {
        var (code, stdout, err) = CliRunner.Run("eval", "prompts", "--prompts", "japan flag; red apple", "--seeds", "2");
        Assert.True(code == 0, err);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2).ToArray();
        Assert.Equal(4, rows.Length);
        var classes = TwemojiClassifier.Load(Path.Combine(Shipped, "eval_classifier")).Classes;
        foreach (var (row, i) in rows.Select((r, i) => (r, i)))
        {
            var cells = row.Split('|', StringSplitOptions.TrimEntries);
            Assert.Equal(i < 2 ? "japan flag" : "red apple", cells[1]);
            Assert.Equal((i % 2).ToString(), cells[2]);
            Assert.Contains(cells[3], classes);
            float p = float.Parse(cells[4], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(p > 1f / classes.Length && p <= 1f, row);
        }
    }

    [Fact]
    public void EvalPrompts_ModelWithoutClassifier_OneLineError() =>
        CliRunner.AssertUserError(["eval", "prompts", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--prompts", "a cat"], "eval_classifier", "--classifier");

    [Fact]
    public void Classify_AgreesWithApply()
    {
        var clf = TwemojiClassifier.Load(Path.Combine(Shipped, "eval_classifier"));
        using var scope = TensorScope.Begin();
        var images = new InstaFlow.Tensors.Random.TorchGenerator(4).Randn(5, 3, 64, 64);
        var (_, preds) = clf.Apply(images);
        var classified = clf.Classify(images);
        Assert.Equal(preds, classified.Select(c => c.Class).ToArray());
        Assert.All(classified, c => Assert.InRange(c.Probability, 1f / clf.Classes.Length, 1f));
    }
}
