// End-to-end InstaFlow pipeline on the tiny SD-1.5 fixture: fixed-noise goldens (e2e/) with every per-step
// intermediate, and seeded goldens (e2e_seeded/) that also pin the PyTorch-compatible noise.
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Pipelines;

public class RectifiedFlowPipelineTests
{
    private static readonly Lazy<SdComponents> Tiny = new(() => SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15")));

    internal static SdComponents Model => Tiny.Value;

    /// <summary>uint8 images may differ by 1 on at most 1% of values (the fixture README's tolerance).</summary>
    internal static void AssertImagesClose(byte[] expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int maxDiff = 0, unequal = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            int d = Math.Abs(expected[i] - actual[i]);
            maxDiff = Math.Max(maxDiff, d);
            if (d != 0) unequal++;
        }
        Assert.True(maxDiff <= 1 && unequal <= expected.Length / 100, $"{what}: max uint8 diff {maxDiff}, {unequal} of {expected.Length} values differ");
    }

    [Theory]
    [InlineData("rf_n1_g0", new[] { "a photo of a cat", "an astronaut riding a horse on mars, oil painting" }, null, 1, 0f)]
    [InlineData("rf_n2_g3_defaultneg", new[] { "a photo of a cat", "an astronaut riding a horse on mars, oil painting" }, new[] { "", "" }, 2, 3f)]
    [InlineData("rf_n4_g1.5_neg", new[] { "a photo of a cat", "an astronaut riding a horse on mars, oil painting" }, null, 4, 1.5f)]
    public void Generate_FixedNoiseGolden_MatchesReference(string name, string[] prompts, string[]? negatives, int steps, float guidance)
    {
        using var g = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "e2e", name + ".safetensors"));
        negatives ??= ReadNegatives(name);
        using var scope = TensorScope.Begin();
        var pipe = new RectifiedFlowPipeline(Model);
        var cap = new Dictionary<string, Tensor>();
        pipe.Hook = (k, t) => cap[k] = t.ClonePersistent();
        var res = pipe.Generate(new GenerationRequest { Prompts = prompts, NegativePrompts = negatives, Steps = steps, Guidance = guidance, InitLatents = g.ReadF32("init_latents") });
        TestUtil.AssertClose(g.ReadF32("prompt_embeds"), cap["prompt_embeds"], 2e-4f, what: "prompt_embeds");
        for (int i = 0; i < steps; i++)
        {
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.v_pred"), cap[$"step{i}.v_pred"], 2e-4f, what: $"step{i}.v_pred");
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.latents"), cap[$"step{i}.latents"], 2e-4f, what: $"step{i}.latents");
        }
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, 2e-4f, what: "final_latents");
        TestUtil.AssertClose(g.ReadF32("image_raw"), cap["image_raw"], 2e-4f, what: "image_raw");
        var u8 = g.ReadU8("image_u8_hwc");
        int per = u8.Length / prompts.Length;
        for (int b = 0; b < prompts.Length; b++) AssertImagesClose(u8[(b * per)..((b + 1) * per)], res.ImagesHwc[b], $"{name} image {b}");
        res.FinalLatents.Dispose();
    }

    /// <summary>The n4 case uses explicit negative prompts; the fixture README lists them.</summary>
    private static string[]? ReadNegatives(string name)
    {
        if (name != "rf_n4_g1.5_neg") return null;
        var readme = File.ReadAllText(Path.Combine(TestUtil.Fixtures, "e2e", "README.md"));
        var section = readme[readme.IndexOf("## rf_n4_g1.5_neg", StringComparison.Ordinal)..];
        var line = section.Split('\n').First(l => l.StartsWith("negative prompts:", StringComparison.Ordinal));
        return JsonSerializer.Deserialize<string[]>(line["negative prompts:".Length..].Trim());
    }

    [Theory]
    [InlineData("case0")]
    [InlineData("case1")]
    [InlineData("case2")]
    public void Generate_SeededGolden_MatchesReference(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestUtil.Fixtures, "e2e_seeded", "cases.json")));
        var c = doc.RootElement.EnumerateArray().First(e => e.GetProperty("name").GetString() == name);
        using var g = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "e2e_seeded", name + ".safetensors"));
        var neg = c.GetProperty("negative_prompt").ValueKind == JsonValueKind.Null ? null : new[] { c.GetProperty("negative_prompt").GetString()! };
        var pipe = new RectifiedFlowPipeline(Model);
        using var scope = TensorScope.Begin();
        var res = pipe.Generate(new GenerationRequest
        {
            Prompts = new[] { c.GetProperty("prompt").GetString()! }, NegativePrompts = neg,
            Steps = c.GetProperty("num_inference_steps").GetInt32(), Guidance = (float)c.GetProperty("guidance_scale").GetDouble(),
            Seed = c.GetProperty("seed").GetUInt64(), Width = c.GetProperty("width").GetInt32(), Height = c.GetProperty("height").GetInt32(),
        });
        var expectedNoise = g.ReadF32("initial_latents");
        var drawn = new InstaFlow.Tensors.Random.TorchGenerator(c.GetProperty("seed").GetUInt64()).Randn(expectedNoise.ShapeArray());
        TestUtil.AssertClose(expectedNoise, drawn, 1e-5f, what: "initial noise");
        AssertImagesClose(g.ReadU8("image_u8_hwc"), res.ImagesHwc[0], name);
        res.FinalLatents.Dispose();
    }

    [Fact]
    public void ReleaseWeightsAsUsed_SameImage_ThenRefusesToGenerateAgain()
    {
        var req = new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 5, Steps = 2 };
        var expected = new RectifiedFlowPipeline(Model).Generate(req);
        expected.FinalLatents.Dispose();
        using var own = SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));
        var pipe = new RectifiedFlowPipeline(own) { ReleaseWeightsAsUsed = true };
        var res = pipe.Generate(req);
        res.FinalLatents.Dispose();
        Assert.Equal(expected.ImagesHwc[0], res.ImagesHwc[0]);
        Assert.True(own.DenoisersReleased);
        var e = Assert.Throws<InvalidOperationException>(() => pipe.Generate(req));
        Assert.Contains("released", e.Message);
    }
}
