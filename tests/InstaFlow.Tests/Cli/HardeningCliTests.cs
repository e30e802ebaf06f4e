// Command-line regressions from the hardening issue (#12): option shapes and values that used to crash or mislead.
namespace InstaFlow.Tests.Cli;

public sealed class HardeningCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-hardcli-").FullName;
    private static string TinyModel => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    private static string Kohya => Path.Combine(TestUtil.Fixtures, "lora", "kohya_lora.safetensors");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A copy of the tiny model whose UNet conv_out.bias is all NaN (as a diverged run would save it).</summary>
    private string NaNModel()
    {
        string dst = Path.Combine(_dir, "nan-model");
        foreach (var file in Directory.GetFiles(TinyModel, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(dst, Path.GetRelativePath(TinyModel, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        string unet = Path.Combine(dst, "unet", "diffusion_pytorch_model.safetensors");
        using var scope = InstaFlow.Tensors.TensorScope.Begin();
        var tensors = new List<(string, InstaFlow.Tensors.Tensor)>();
        using (var f = InstaFlow.IO.SafeTensors.Open(unet))
            foreach (var info in f.Tensors)
            {
                var t = f.ReadF32(info.Name).ClonePersistent();
                if (info.Name == "conv_out.bias") t.Span.Fill(float.NaN);
                tensors.Add((info.Name, t));
            }
        InstaFlow.IO.SafeTensors.Save(unet, tensors);
        foreach (var (_, t) in tensors) t.Dispose();
        return dst;
    }

    [Fact]
    public void Generate_AllNaNTensor_WarnsAndCheckWeightsRefuses()
    {
        string model = NaNModel();
        var (code, _, err) = CliRunner.Run("generate", "--model", model, "a red fox", "--seed", "3", "-o", Path.Combine(_dir, "a.png"));
        Assert.True(code == 0, err);
        Assert.Contains("warning: ", err);
        Assert.Contains("conv_out.bias' is entirely NaN/Inf", err);

        CliRunner.AssertUserError(["generate", "--model", model, "--check-weights", "a red fox", "--seed", "3", "-o", Path.Combine(_dir, "b.png")],
            "unet", "conv_out.bias", "NaN/Inf");
    }

    [Fact]
    public void Generate_MissingVariant_OneLineError()
    {
        CliRunner.AssertUserError(["generate", "--model", TinyModel, "--variant", "fp61", "a red fox", "-o", Path.Combine(_dir, "v.png")], "fp61");
    }

    [Fact]
    public void Generate_LoraThenPrompt_TakesOneFilePerLoraAndThePromptAsPrompt()
    {
        var png = Path.Combine(_dir, "fox.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", TinyModel, "--lora", Kohya, "a red fox", "--seed", "3", "-o", png);
        Assert.True(code == 0, err);
        Assert.Equal("a red fox", InstaFlow.IO.Png.Read(png).Text["prompt"]);
    }

    [Theory]
    [InlineData("--count", "9223372036854775807", "2^32")]
    [InlineData("--threads", "0", "--threads must be between 1 and 1024")]
    public void Triplets_OutOfRangeOption_OneLineError(string option, string value, string fragment)
    {
        var prompts = Path.Combine(_dir, "prompts.txt");
        File.WriteAllText(prompts, "a cat\n");
        string[] count = option == "--count" ? [] : ["--count", "4"];
        string[] args = ["triplets", "--teacher", TinyModel, "--prompts", prompts, .. count, "--out", Path.Combine(_dir, "t"), option, value];
        CliRunner.AssertUserError(args, fragment);
    }

    [Theory]
    [InlineData("--text-hidden", "5", "--text-hidden must be 8..1024")]
    [InlineData("--text-layers", "100", "--text-layers must be 1..24")]
    [InlineData("--channels", "100000,100000,100000", "--channels: each level must be 8..2048")]
    [InlineData("--channels", "32,x", "not a list of positive integers: 32,x")]
    public void BenchTrain_ArchitectureOutOfRange_OneLineError(string option, string value, string fragment) =>
        CliRunner.AssertUserError(["bench", "train", "--runs", "1", option, value], fragment);
}
