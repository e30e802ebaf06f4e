// The three SDXL-Refiner img2img goldens (diffusers 0.21.4 StableDiffusionXLImg2ImgPipeline) through RefinerPipeline:
// every intermediate, each scheduler step's latents and the image, from the stored noises and from the seed.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tests.Models;

namespace InstaFlow.Tests.Pipelines;

public class RefinerPipelineTests
{
    internal sealed record Case(string Prompt, string? Negative, float Strength, int Steps, int Height, int Width, ulong Seed);

    internal static readonly Dictionary<string, Case> Cases = new()
    {
        ["img2img_a"] = new("A high-resolution photograph of a waterfall in autumn; muted tone", null, 0.3f, 50, 64, 64, 101098274),
        ["img2img_b"] = new("a cozy wooden cabin in a snowy forest", "blurry, low quality", 0.6f, 8, 64, 96, 4242),
        ["img2img_c"] = new("close-up photo of a hummingbird drinking nectar", "cartoon, drawing", 0.29f, 100, 96, 64, 777),
    };

    internal static RefineRequest Request(SafeTensorsFile g, Case c, bool withNoise) => new()
    {
        ImageHwc = g.ReadU8("init_image_u8_hwc"), Width = c.Width, Height = c.Height, Prompt = c.Prompt, NegativePrompt = c.Negative,
        Strength = c.Strength, Steps = c.Steps, Guidance = 5f, Seed = c.Seed,
        EncodeNoise = withNoise ? g.ReadF32("encode_noise") : null, AddNoise = withNoise ? g.ReadF32("add_noise") : null,
    };

    [Theory]
    [InlineData("img2img_a")]
    [InlineData("img2img_b")]
    [InlineData("img2img_c")]
    public void Refine_StoredNoise_MatchesEveryStepAndImage(string name)
    {
        using var scope = TensorScope.Begin();
        using var g = SafeTensors.Open(Path.Combine(RefinerModelGoldenTests.Dir, name + ".safetensors"));
        using var model = RefinerComponents.Load(RefinerModelGoldenTests.Tiny);
        var cap = new Dictionary<string, Tensor>();
        var pipe = new RefinerPipeline(model) { Hook = (k, t) => cap[k] = t.ClonePersistent() };
        var res = pipe.Refine(Request(g, Cases[name], withNoise: true));

        foreach (var key in new[] { "prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds", "negative_pooled_prompt_embeds", "image_tensor",
                     "init_latents", "noisy_latents", "add_time_ids", "add_neg_time_ids", "image_raw" })
            TestUtil.AssertClose(g.ReadF32(key), cap[key], 2e-4f, what: $"{name} {key}");
        TestUtil.AssertClose(g.ReadF32("moments"), cap["moments"], 1e-3f, what: $"{name} moments");
        int n = g.ReadF32("timesteps").Span.Length;
        Assert.True(cap.ContainsKey($"step{n - 1}.latents") && !cap.ContainsKey($"step{n}.latents"), $"{name}: expected {n} denoising steps");
        for (int i = 0; i < n; i++)
        {
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.model_input"), cap[$"step{i}.model_input"], 2e-4f, what: $"{name} step{i}.model_input");
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.noise_pred"), cap[$"step{i}.noise_pred"], 5e-4f, what: $"{name} step{i}.noise_pred");
            TestUtil.AssertClose(g.ReadF32($"step{i}.latents"), cap[$"step{i}.latents"], 2e-4f, what: $"{name} step{i}.latents");
        }
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, 2e-4f, what: $"{name} final_latents");
        RectifiedFlowPipelineTests.AssertImagesClose(g.ReadU8("image_u8_hwc"), res.ImagesHwc[0], $"{name} image");
        res.FinalLatents.Dispose();
    }

    [Theory]
    [InlineData("img2img_b")]
    public void Refine_Seed_DrawsTheStoredNoises(string name)
    {
        using var scope = TensorScope.Begin();
        using var g = SafeTensors.Open(Path.Combine(RefinerModelGoldenTests.Dir, name + ".safetensors"));
        using var model = RefinerComponents.Load(RefinerModelGoldenTests.Tiny);
        var res = new RefinerPipeline(model).Refine(Request(g, Cases[name], withNoise: false));
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, 2e-4f, what: $"{name} final_latents from the seed");
        RectifiedFlowPipelineTests.AssertImagesClose(g.ReadU8("image_u8_hwc"), res.ImagesHwc[0], $"{name} image from the seed");
        res.FinalLatents.Dispose();
    }

    [Fact]
    public void Refine_ReleaseWeightsAsUsed_SameImageThenRefusesAnotherRun()
    {
        using var scope = TensorScope.Begin();
        using var g = SafeTensors.Open(Path.Combine(RefinerModelGoldenTests.Dir, "img2img_b.safetensors"));
        using var model = RefinerComponents.Load(RefinerModelGoldenTests.Tiny);
        var pipe = new RefinerPipeline(model) { ReleaseWeightsAsUsed = true };
        var res = pipe.Refine(Request(g, Cases["img2img_b"], withNoise: true));
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, 2e-4f, what: "one-shot final_latents");
        RectifiedFlowPipelineTests.AssertImagesClose(g.ReadU8("image_u8_hwc"), res.ImagesHwc[0], "one-shot image");
        res.FinalLatents.Dispose();
        Assert.True(model.WeightsReleased);
        var e = Assert.Throws<InvalidOperationException>(() => pipe.Refine(Request(g, Cases["img2img_b"], withNoise: true)));
        Assert.Contains("load the refiner again", e.Message);
    }

    [Theory]
    [InlineData(50, 0.3f, 35)]
    [InlineData(8, 0.6f, 4)]
    [InlineData(100, 0.29f, 72)]
    [InlineData(50, 0.58f, 22)]
    public void StartStep_DoubleProductTruncated_MatchesDiffusers(int steps, float strength, int expected) =>
        Assert.Equal(expected, RefinerPipeline.StartStep(steps, strength));

    [Fact]
    public void Refine_StrengthTooSmall_NamesTheFix()
    {
        using var scope = TensorScope.Begin();
        using var model = RefinerComponents.Load(RefinerModelGoldenTests.Tiny);
        var e = Assert.Throws<InvalidInputException>(() => new RefinerPipeline(model).Refine(new RefineRequest
        {
            ImageHwc = new byte[64 * 64 * 3], Width = 64, Height = 64, Prompt = "x", Strength = 0.01f, Steps = 10,
        }));
        Assert.Contains("--strength", e.Message);
    }
}
