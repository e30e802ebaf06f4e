// `instaflow refine` on the three SDXL-Refiner goldens (the golden file doubles as the --init-noise file, since it
// holds encode_noise and add_noise), from the seed, the one-line errors, and `generate --refiner`.
using InstaFlow.IO;
using InstaFlow.Tests.Models;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Cli;

public sealed class RefineCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-refine-").FullName;
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private string InputPng(SafeTensorsFile g, RefinerPipelineTests.Case c)
    {
        var path = Path.Combine(_tmp, "in.png");
        Png.Write(path, c.Width, c.Height, 3, g.ReadU8("init_image_u8_hwc"));
        return path;
    }

    private static string[] Args(RefinerPipelineTests.Case c, string input, string output)
    {
        var a = new List<string> { "refine", "--model", RefinerModelGoldenTests.Tiny, "--image", input, "--prompt", c.Prompt,
            "--strength", c.Strength.ToString(System.Globalization.CultureInfo.InvariantCulture), "--steps", c.Steps.ToString(), "--guidance", "5", "-o", output };
        if (c.Negative != null) a.AddRange(["--negative-prompt", c.Negative]);
        return a.ToArray();
    }

    [Theory]
    [InlineData("img2img_a")]
    [InlineData("img2img_b")]
    [InlineData("img2img_c")]
    public void Refine_InitNoise_MatchesGoldenImageAndLatents(string name)
    {
        var goldenPath = Path.Combine(RefinerModelGoldenTests.Dir, name + ".safetensors");
        using var g = SafeTensors.Open(goldenPath);
        var c = RefinerPipelineTests.Cases[name];
        var outPng = Path.Combine(_tmp, "out.png");
        var lat = Path.Combine(_tmp, "lat.safetensors");
        var (code, stdout, err) = CliRunner.Run([.. Args(c, InputPng(g, c), outPng), "--init-noise", goldenPath, "--save-latents", lat]);
        Assert.True(code == 0, err);
        Assert.Contains(outPng, stdout);
        Assert.Contains("unet_step0", err);
        RectifiedFlowPipelineTests.AssertImagesClose(g.ReadU8("image_u8_hwc"), Png.Read(outPng).Pixels, $"cli {name}");
        using var saved = SafeTensors.Open(lat);
        TestUtil.AssertClose(g.ReadF32("final_latents"), saved.ReadF32("latents"), 2e-4f, what: $"cli {name} latents");
    }

    [Fact]
    public void Refine_Seed_MatchesGoldenImage()
    {
        using var g = SafeTensors.Open(Path.Combine(RefinerModelGoldenTests.Dir, "img2img_a.safetensors"));
        var c = RefinerPipelineTests.Cases["img2img_a"];
        var outPng = Path.Combine(_tmp, "seeded.png");
        var (code, _, err) = CliRunner.Run([.. Args(c, InputPng(g, c), outPng), "--seed", c.Seed.ToString()]);
        Assert.True(code == 0, err);
        var img = Png.Read(outPng);
        RectifiedFlowPipelineTests.AssertImagesClose(g.ReadU8("image_u8_hwc"), img.Pixels, "cli img2img_a from the seed");
        Assert.Equal(c.Seed.ToString(), img.Text["seed"]);
    }

    [Fact]
    public void Refine_SeedAndInitNoise_OneErrorLine() =>
        CliRunner.AssertUserError(["refine", "--model", RefinerModelGoldenTests.Tiny, "--image", "x.png", "--prompt", "p", "--seed", "1", "--init-noise", "n.safetensors"], "--seed", "--init-noise");

    [Fact]
    public void Refine_StrengthRunsNoStep_OneErrorLine() =>
        CliRunner.AssertUserError(["refine", "--model", RefinerModelGoldenTests.Tiny, "--image", "x.png", "--prompt", "p", "--strength", "0.01", "--steps", "10"], "--strength");

    [Fact]
    public void Refine_InitNoiseWithoutTensors_NamesFileAndKey()
    {
        using var g = SafeTensors.Open(Path.Combine(RefinerModelGoldenTests.Dir, "img2img_a.safetensors"));
        var c = RefinerPipelineTests.Cases["img2img_a"];
        var bad = Path.Combine(_tmp, "bad.safetensors");
        LatentsFile.Write(bad, InstaFlow.Tensors.Tensor.Zeros(1, 4, 8, 8));
        CliRunner.AssertUserError([.. Args(c, InputPng(g, c), Path.Combine(_tmp, "o.png")), "--init-noise", bad], "bad.safetensors", "encode_noise");
    }

    [Fact]
    public void Generate_Refiner_WritesOneStepAndRefinedImages()
    {
        var outPng = Path.Combine(_tmp, "apple.png");
        var (code, stdout, err) = CliRunner.Run("generate", "red apple", "--seed", "3", "--refiner", RefinerModelGoldenTests.Tiny, "--refine-steps", "10", "-o", outPng);
        Assert.True(code == 0, err);
        var onestep = Path.Combine(_tmp, "apple-onestep.png");
        Assert.Contains(onestep, stdout);
        Assert.Contains("refine_unet_step2", err);
        var (a, b) = (Png.Read(onestep), Png.Read(outPng));
        Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
        Assert.NotEqual(a.Pixels, b.Pixels);
        Assert.Equal("3", b.Text["seed"]);
    }
}
