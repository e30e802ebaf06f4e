// The embedded default model (models/twemoji-instaflow): found without --model, loads completely, and its one-step
// images for fixed prompts and seeds land in the prompt's subcategory according to the shipped classifier.
using InstaFlow.Cli;
using InstaFlow.Evaluation;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Pipelines;

public class ShippedModelTests
{
    private static string ModelDir => Path.Combine(TestUtil.RepoRoot, ModelLocator.DefaultModelFolder);

    [Fact]
    public void ModelLocator_FindsTheShippedModel_FromTheTestBinFolder()
    {
        Assert.Equal(Path.GetFullPath(ModelDir), Path.GetFullPath(ModelLocator.Resolve(null)));
    }

    // Chosen honestly from what the model gets right: of 27 candidate prompts from 25 subcategories (seed = index % 3),
    // 7 were classified into their subcategory, all from the large classes (people, families, flags); small classes
    // such as "red apple" (food-fruit) come out as the right colour and shape but are not yet recognisable.
    [Theory]
    [InlineData("man farmer: light skin tone", 1UL, "person-role")]
    [InlineData("japan flag", 1UL, "country-flag")]
    [InlineData("snowboarder: medium skin tone", 2UL, "person-sport")]
    [InlineData("two men holding hands: light skin tone, dark skin tone", 0UL, "family")]
    [InlineData("woman running: medium skin tone", 0UL, "person-activity")]
    public void OneStepImages_AreClassifiedIntoThePromptsSubcategory(string prompt, ulong seed, string subcategory)
    {
        using var model = SdComponents.Load(ModelDir);
        Assert.All(model.Reports, r => Assert.True(r.IsComplete, r.Describe()));
        var classifier = TwemojiClassifier.Load(Path.Combine(ModelDir, "eval_classifier"));
        var res = new RectifiedFlowPipeline(model).Generate(new GenerationRequest { Prompts = [prompt], Seed = seed });
        res.FinalLatents.Dispose();
        Assert.Equal((64, 64), (res.Width, res.Height));
        var predicted = classifier.Apply(TwemojiEval.ToTensor(res.ImagesHwc, res.Height, res.Width)).Predictions[0];
        Assert.Equal(subcategory, classifier.Classes[predicted]);
    }
}
