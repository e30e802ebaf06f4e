// One InstaFlow ODE: what the trainer's reflow pairs solve is what `generate` serves. For the same noise and caption
// the pair generator's end state equals the pipeline's final latents bit for bit, with guidance off (0, the old trap
// that made unconditional pairs) and on, and the source holds a single InstaFlow time mapping and Euler step.
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Tests.Pipelines;

public class OneOdeTests
{
    private static string Shipped => Path.Combine(TestUtil.RepoRoot, ModelLocator.DefaultModelFolder);

    [Theory]
    [InlineData(0f, 1)]
    [InlineData(0f, 3)]
    [InlineData(1f, 2)]
    [InlineData(2.5f, 3)]
    public void ReflowPairs_SameNoiseAndCaption_EqualGenerateBitForBit(float guidance, int steps)
    {
        var data = Directory.CreateTempSubdirectory("instaflow-one-ode-").FullName;
        try
        {
            File.WriteAllLines(Path.Combine(data, "captions.jsonl"),
            [
                """{"file": "a.png", "caption": "red apple", "extra_captions": ["apple"], "category": "Food", "subcategory": "food-fruit", "split": "train"}""",
                """{"file": "b.png", "caption": "rocket", "extra_captions": [], "category": "Travel", "subcategory": "transport-air", "split": "train"}""",
                """{"file": "c.png", "caption": "snowman", "extra_captions": [], "category": "Nature", "subcategory": "sky-weather", "split": "train"}""",
            ]);
            var pairs = TextToImageTraining.PairGeneratorFor(Shipped, data, steps, guidance, seed: 11, batchSize: 1);
            using var model = SdComponents.Load(Shipped);
            var captions = TextToImageTraining.TrainCaptions(data, model);
            var pipe = new RectifiedFlowPipeline(model);
            using var scope = TensorScope.Begin();
            var points = pairs.Generate(0, 3);  // [3, 2, C, h, w]: noise, end state
            for (int k = 0; k < 3; k++)
            {
                var noise = Ops.Narrow(Ops.Narrow(points, 0, k, 1), 1, 0, 1).Reshape([1, .. points.ShapeArray()[2..]]).Clone();
                var pairEnd = Ops.Narrow(Ops.Narrow(points, 0, k, 1), 1, 1, 1).Reshape([1, .. points.ShapeArray()[2..]]);
                var res = pipe.Generate(new GenerationRequest
                {
                    Prompts = [captions.Texts[pairs.ConditionIndex(k)]], Steps = steps, Guidance = guidance, InitLatents = noise,
                });
                TestUtil.AssertClose(pairEnd, res.FinalLatents, 0f, 0f, $"pair {k} ('{captions.Texts[pairs.ConditionIndex(k)]}') vs generate");
                res.FinalLatents.Dispose();
            }
        }
        finally { Directory.Delete(data, recursive: true); }
    }

    [Fact]
    public void Source_OneInstaFlowTimeMappingAndEulerStep()
    {
        var src = Directory.GetFiles(Path.Combine(TestUtil.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")).ToArray();
        // the network time 1000 (1 - t) is written once (FlowConvention), and so is the Euler update (EulerSampler)
        var timeMaps = src.Where(f => File.ReadAllText(f).Contains("(1.0 - t) * 1000.0")).Select(f => Path.GetFileName(f)).ToArray();
        Assert.Equal(["FlowConvention.cs"], timeMaps);
        var eulerLoops = src.Where(f => File.ReadAllText(f).Contains("Ops.MulScalar(v(x, t), (float)h)")).Select(f => Path.GetFileName(f)).ToArray();
        Assert.Equal(["Samplers.cs"], eulerLoops);
        foreach (var f in src)
        {
            var text = File.ReadAllText(f);
            Assert.False(text.Contains("1.0 - (double)i /") || text.Contains("(1 - i/n)") || text.Contains("1000f * (1f - t)"),
                $"{Path.GetFileName(f)} computes an InstaFlow time of its own");
        }
    }
}
