// `instaflow generate` end to end on the tiny fixture (same image as the Python pipeline), and the one-line errors
// for unusable model folders: corrupt or truncated weights, a missing component, an unsupported block, a wrong shape.
using InstaFlow.IO;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Cli;

public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-gen-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    [Fact]
    public void Generate_SeededCase0_WritesReferenceImageWithParameters()
    {
        var outPng = Path.Combine(_tmp, "cat.png");
        var lat = Path.Combine(_tmp, "lat.safetensors");
        var (code, stdout, err) = CliRunner.Run("generate", "--model", Tiny, "--prompt", "a photo of a cat", "--seed", "42", "--steps", "1", "--output", outPng, "--save-latents", lat);
        Assert.True(code == 0, err);
        Assert.Contains(outPng, stdout);
        Assert.Contains("unet_step0", err);
        var img = Png.Read(outPng);
        var expected = Png.Read(Path.Combine(TestUtil.Fixtures, "e2e_seeded", "case0.png"));
        Assert.Equal((expected.Width, expected.Height, 3), (img.Width, img.Height, img.Channels));
        RectifiedFlowPipelineTests.AssertImagesClose(expected.Pixels, img.Pixels, "cli case0");
        Assert.Equal("a photo of a cat", img.Text["prompt"]);
        Assert.Equal("42", img.Text["seed"]);
        Assert.Contains("Steps: 1", img.Text["parameters"]);
        var saved = LatentsFile.Read(lat);
        Assert.Equal(new[] { 1, 4, 8, 8 }, saved.ShapeArray());
        saved.Dispose();
    }

    [Fact]
    public void Generate_InitLatentsRoundTrip_ReproducesSeededImage()
    {
        var noise = new InstaFlow.Tensors.Random.TorchGenerator(42).Randn(1, 4, 8, 8);
        var lat = Path.Combine(_tmp, "noise.safetensors");
        LatentsFile.Write(lat, noise);
        var outPng = Path.Combine(_tmp, "fromfile.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "a photo of a cat", "--init-latents", lat, "--output", outPng);
        Assert.True(code == 0, err);
        RectifiedFlowPipelineTests.AssertImagesClose(Png.Read(Path.Combine(TestUtil.Fixtures, "e2e_seeded", "case0.png")).Pixels, Png.Read(outPng).Pixels, "init-latents");
    }

    [Fact]
    public void Generate_VariantFp16_ImageWithinOneOfF32()
    {
        string f32 = Path.Combine(_tmp, "f32.png"), f16 = Path.Combine(_tmp, "f16.png");
        Assert.Equal(0, CliRunner.Run("generate", "--model", Tiny, "a photo of a cat", "--seed", "3", "--output", f32).Code);
        var (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "a photo of a cat", "--seed", "3", "--variant", "fp16", "--output", f16);
        Assert.True(code == 0, err);
        var a = Png.Read(f32).Pixels; var b = Png.Read(f16).Pixels;
        // F16 rounding of the UNet weights moves the output by up to ~4e-3 (fixture README): a few uint8 steps at most.
        Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) <= 3, "fp16 variant image differs from the f32 one by more than 3");
    }

    [Fact]
    public void Generate_BatchOfTwo_WritesNumberedFiles()
    {
        var outPng = Path.Combine(_tmp, "b.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "two dogs", "--batch", "2", "--output", outPng);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(_tmp, "b-0.png")) && File.Exists(Path.Combine(_tmp, "b-1.png")));
    }

    [Fact]
    public void Generate_SizeNotMultipleOf8_PrintsOneLineError() =>
        CliRunner.AssertUserError(new[] { "generate", "--model", Tiny, "a cat", "--width", "20", "--output", Path.Combine(_tmp, "x.png") }, "--width 20", "multiple of 8");

    /// <summary>A copy of the tiny model folder that a test may damage.</summary>
    private string CopyTiny()
    {
        var dst = Path.Combine(_tmp, "model");
        foreach (var f in Directory.GetFiles(Tiny, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(Tiny, f);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dst, rel))!);
            File.Copy(f, Path.Combine(dst, rel));
        }
        return dst;
    }

    private string[] GenArgs(string model) => new[] { "generate", "--model", model, "a cat", "--output", Path.Combine(_tmp, "o.png") };

    [Fact]
    public void Generate_TruncatedWeights_NamesFileAndProblem()
    {
        var m = CopyTiny();
        var w = Path.Combine(m, "unet", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(w);
        File.WriteAllBytes(w, bytes[..(bytes.Length / 2)]);
        CliRunner.AssertUserError(GenArgs(m), "diffusion_pytorch_model.safetensors");
    }

    [Fact]
    public void Generate_CorruptHeader_NamesFileAndProblem()
    {
        var m = CopyTiny();
        var w = Path.Combine(m, "vae", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(w);
        bytes[10] = (byte)'#';
        File.WriteAllBytes(w, bytes);
        CliRunner.AssertUserError(GenArgs(m), Path.Combine("vae", "diffusion_pytorch_model.safetensors"));
    }

    [Fact]
    public void Generate_MissingComponent_NamesFolder()
    {
        var m = CopyTiny();
        Directory.Delete(Path.Combine(m, "text_encoder"), recursive: true);
        CliRunner.AssertUserError(GenArgs(m), "text_encoder/", "missing");
    }

    [Fact]
    public void Generate_UnsupportedBlockType_NamesKeyAndValue()
    {
        var m = CopyTiny();
        var cfg = Path.Combine(m, "unet", "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"DownBlock2D\"", "\"AttnDownBlock2D\""));
        CliRunner.AssertUserError(GenArgs(m), "down_block_types", "AttnDownBlock2D", "config.json");
    }

    [Fact]
    public void Generate_WrongShapedTensor_NamesKeyAndShapes()
    {
        var m = CopyTiny();
        var cfg = Path.Combine(m, "unet", "config.json");
        // A different cross_attention_dim makes every attn2.to_k/to_v weight the wrong shape for the config.
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 48"));
        CliRunner.AssertUserError(GenArgs(m), "attn2.to_k.weight", "[32, 32]", "[32, 48]");
    }

    [Fact]
    public void Generate_MissingModelFolder_PrintsOneLineError() =>
        CliRunner.AssertUserError(GenArgs(Path.Combine(_tmp, "nope")), "model folder not found");
}
