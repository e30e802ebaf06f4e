// The embedded default model (models/twemoji-instaflow): found without --model, loads completely, and its one-step
// images for fixed prompts and seeds land in the prompt's subcategory according to the shipped classifier.
using InstaFlow.Cli;
using InstaFlow.Evaluation;
using InstaFlow.IO;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Pipelines;

public class ShippedModelTests
{
    private static string ModelDir => Path.Combine(TestUtil.RepoRoot, ModelLocator.DefaultModelFolder);

    // The build copies the model next to the program (as `dotnet publish` does), where the locator looks first.
    [Fact]
    public void ModelLocator_NoModelGiven_FindsTheCopyNextToTheProgram()
    {
        var found = Path.GetFullPath(ModelLocator.Resolve(null));
        Assert.StartsWith(Path.GetFullPath(AppContext.BaseDirectory), found);
        foreach (var file in Directory.GetFiles(ModelDir, "*", SearchOption.AllDirectories))
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Combine(found, Path.GetRelativePath(ModelDir, file))));
    }

    // Issue 17's budget for the embedded model: weights, tokenizer, classifier and card together, in decimal megabytes.
    [Fact]
    public void ShippedFolder_AllFiles_AtMost30MB()
    {
        long bytes = Directory.GetFiles(ModelDir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes <= 30_000_000, $"models/twemoji-instaflow holds {bytes:N0} bytes, over the 30 MB budget");
    }

    // Chosen honestly from what the v2.1 model gets right: `eval prompts --seeds 3` on 15 candidates (the grid
    // prompts and common emoji) put all three seeds of these prompts in their subcategory; seed 1 scores 0.82-0.999.
    // "red apple", rocket, pizza, banana and sun do not (EXPERIMENTS.md, "Twemoji v2.1"). "japan flag" is a flag to the
    // classifier, though the grid shows a blue one without the red disc.
    [Theory]
    [InlineData("red heart", 1UL, "heart")]
    [InlineData("grinning face", 1UL, "face-smiling")]
    [InlineData("thumbs up sign", 1UL, "hand-fingers-closed")]
    [InlineData("japan flag", 1UL, "country-flag")]
    [InlineData("snowman", 1UL, "sky & weather")]
    [InlineData("dog face", 1UL, "animal-mammal")]
    [InlineData("smiling cat face", 1UL, "cat-face")]
    [InlineData("man farmer: light skin tone", 1UL, "person-role")]
    [InlineData("two men holding hands: light skin tone, dark skin tone", 1UL, "family")]
    public void OneStepImages_AreClassifiedIntoThePromptsSubcategory(string prompt, ulong seed, string subcategory)
    {
        using var model = SdComponents.Load(ModelDir);
        Assert.All(model.Reports, r => Assert.True(r.IsComplete, r.Describe()));
        var classifier = TwemojiClassifier.Load(Path.Combine(ModelDir, "eval_classifier"));
        var res = new RectifiedFlowPipeline(model).Generate(new GenerationRequest { Prompts = [prompt], Seed = seed });
        res.FinalLatents.Dispose();
        Assert.Equal((64, 64), (res.Width, res.Height));
        var predicted = classifier.Apply(ImageTensors.ToTensorSigned(res.ImagesHwc, res.Width, res.Height)).Predictions[0];
        Assert.Equal(subcategory, classifier.Classes[predicted]);
    }
}
