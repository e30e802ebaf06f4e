// Bring-your-own-checkpoint end to end through the CLI: every fixture format (LDM safetensors F32/F16, zip and legacy
// .ckpt with EMA, a --unet .pt, a .bin folder) gives the reference latents and image, convert round-trips, InstaFlow's
// fine-tune merge matches, and every bad/ file is refused with one error line, no output and no side effect.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Cli;

public sealed class SingleFileCommandTests : IDisposable
{
    private static readonly string[] Prompts = ["a red bicycle leaning on a brick wall", "portrait of an old sailor, oil painting"];
    private static string Dir => Path.Combine(TestUtil.Fixtures, "single_file");
    private static string Mini => Path.Combine(Dir, "mini-sd15");
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    public static TheoryData<string, string[]> Formats() => new()
    {
        { "diffusers", ["--model", Mini] },
        { "ldm", ["--model", Path.Combine(Dir, "ldm.safetensors"), "--config", Mini] },
        { "ldm_fp16", ["--model", Path.Combine(Dir, "ldm_fp16.safetensors"), "--config", Mini] },
        { "ldm_ema.default", ["--model", Path.Combine(Dir, "ldm_ema.ckpt"), "--config", Mini] },
        { "ldm_ema.ema", ["--model", Path.Combine(Dir, "ldm_ema.ckpt"), "--config", Mini, "--ema"] },
        { "ldm_legacy.default", ["--model", Path.Combine(Dir, "ldm_legacy.ckpt"), "--config", Mini] },
        { "ldm_legacy.ema", ["--model", Path.Combine(Dir, "ldm_legacy.ckpt"), "--config", Mini, "--ema"] },
        { "unet_pt", ["--model", Mini, "--unet", Path.Combine(Dir, "unet_state_dict.pt")] },
        { "bin_folder", ["--model", Path.Combine(Dir, "bin_folder")] },
        { "finetune", ["--model", Path.Combine(Dir, "finetune")] },
        { "merge_a1.0", ["--model", Mini, "--unet", Path.Combine(Dir, "unet_state_dict.pt"), "--merge-finetune", Path.Combine(Dir, "finetune"), "--merge-base", Mini] },
        { "merge_a0.5", ["--model", Mini, "--unet", Path.Combine(Dir, "unet_state_dict.pt"), "--merge-finetune", Path.Combine(Dir, "finetune"), "--merge-base", Mini, "--merge-alpha", "0.5"] },
        { "merge_a0.5", ["--model", Mini, "--unet", Path.Combine(Dir, "unet_state_dict.pt"), "--merge-finetune", Path.Combine(Dir, "finetune"), "--dw", Path.Combine(Dir, "dW.pt"), "--merge-alpha", "0.5"] },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Generate_FixtureFormat_MatchesReferenceLatentsAndImage(string tag, string[] modelArgs)
    {
        using var cases = SafeTensors.Open(Path.Combine(Dir, "cases.safetensors"));
        using var init = cases.ReadF32("init_latents");
        using var final = cases.ReadF32(tag + ".final_latents");
        var images = cases.ReadU8(tag + ".image_u8_hwc");
        int b = init.Dim(0), per = (int)(init.Numel / b), perImage = images.Length / b;
        for (int i = 0; i < b; i++)
        {
            var (latents, png) = Generate(modelArgs, Prompts[i], init, i);
            var want = final.Span.Slice(i * per, per);
            float max = 0;
            for (int k = 0; k < per; k++) max = Math.Max(max, Math.Abs(want[k] - latents[k]));
            Assert.True(max <= 2e-4f, $"{tag} image {i}: final latents max abs diff {max} (atol 2e-4)");
            AssertImageClose(images.AsSpan(i * perImage, perImage), png, $"{tag} image {i}");
        }
    }

    private (float[] Latents, byte[] Pixels) Generate(string[] modelArgs, string prompt, Tensor init, int row)
    {
        var initFile = Path.Combine(_tmp, $"init{row}.safetensors");
        int per = (int)(init.Numel / init.Dim(0));
        using (var one = Tensor.FromArray(init.Span.Slice(row * per, per).ToArray(), 1, init.Dim(1), init.Dim(2), init.Dim(3)))
            LatentsFile.Write(initFile, one);
        string png = Path.Combine(_tmp, $"out{row}.png"), lat = Path.Combine(_tmp, $"lat{row}.safetensors");
        var (code, _, err) = CliRunner.Run(["generate", .. modelArgs, "--prompt", prompt, "--steps", "1", "--guidance", "0",
            "--init-latents", initFile, "--save-latents", lat, "--output", png]);
        Assert.True(code == 0, err);
        using var saved = LatentsFile.Read(lat);
        return (saved.ToArray(), Png.Read(png).Pixels);
    }

    internal static void AssertImageClose(ReadOnlySpan<byte> expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int off = 0, max = 0;
        for (int k = 0; k < actual.Length; k++)
        {
            int d = Math.Abs(expected[k] - actual[k]);
            max = Math.Max(max, d);
            if (d > 0) off++;
        }
        Assert.True(max <= 1 && off <= actual.Length / 100, $"{what}: max abs diff {max}, {off} of {actual.Length} values differ (allowed: 1, 1%)");
    }

    [Fact]
    public void Convert_SingleFileThenFolder_SameWeightsAsSource()
    {
        var outDir = Path.Combine(_tmp, "converted");
        var (code, _, err) = CliRunner.Run("convert", Path.Combine(Dir, "ldm_ema.ckpt"), "--config", Mini, "--ema", "--out", outDir);
        Assert.True(code == 0, err);
        using var direct = SdComponents.Open(new ModelSource(Path.Combine(Dir, "ldm_ema.ckpt")) { ConfigDir = Mini, Ema = true });
        using var back = SdComponents.Load(outDir);
        Assert.Equal(direct.WeightsSha256(), back.WeightsSha256());
        Assert.Equal(direct.Tokenizer.Encode(Prompts[1]), back.Tokenizer.Encode(Prompts[1]));
    }

    [Fact]
    public void Convert_LdmSafetensors_SameWeightsAsDiffusersFolder()
    {
        var outDir = Path.Combine(_tmp, "ldm");
        var (code, _, err) = CliRunner.Run("convert", Path.Combine(Dir, "ldm.safetensors"), "--config", Mini, "--out", outDir);
        Assert.True(code == 0, err);
        using var reference = SdComponents.Load(Mini);
        using var back = SdComponents.Load(outDir);
        Assert.Equal(reference.WeightsSha256(), back.WeightsSha256());
    }

    [Theory]
    [InlineData(1.0f)]
    [InlineData(0.5f)]
    public void Merge_FromFinetuneOrSavedDw_MatchesDemoProbeBitwise(float alpha)
    {
        var a = FormattableString.Invariant($"{alpha:0.0}");
        using var cases = SafeTensors.Open(Path.Combine(Dir, "cases.safetensors"));
        var probe = cases.ReadF32($"merge_a{a}.probe.conv_in.weight").ToArray();
        var saved = Path.Combine(_tmp, "dw.safetensors");
        foreach (var additions in new[]
        {
            new ModelAdditions { MergeFinetune = Path.Combine(Dir, "finetune"), MergeBase = Mini, MergeAlpha = alpha, SaveDwFile = saved },
            new ModelAdditions { DwFile = Path.Combine(Dir, "dW.pt"), MergeAlpha = alpha },
            new ModelAdditions { DwFile = saved, MergeAlpha = alpha },
        })
        {
            using var model = SdComponents.Open(new ModelSource(Mini) { UnetFile = Path.Combine(Dir, "unet_state_dict.pt") });
            additions.ApplyTo(model);
            var got = model.Unet.NamedParameters().Single(p => p.Name == "conv_in.weight").Param.Value.ToArray().Take(probe.Length).ToArray();
            float max = probe.Zip(got).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(max == 0, $"alpha {a} via {additions.DwFile ?? "fine-tune"}: max abs diff {max} (expected bitwise)");
            Assert.Contains(model.Additions, x => x.StartsWith(additions.DwFile != null ? "dW " : "merge ", StringComparison.Ordinal));
        }
    }

    [Theory]
    [InlineData("os_system.ckpt", "os.system", "/tmp/instaflow_w3_marker_public_os_system")]
    [InlineData("builtins_eval.ckpt", "builtins.eval", "/tmp/instaflow_w3_marker_public_builtins_eval")]
    [InlineData("subprocess_popen.pt", "subprocess.Popen", "/tmp/instaflow_w3_marker_public_subprocess_popen")]
    [InlineData("missing_storage.ckpt", "data/1", null)]
    [InlineData("storage_record_short.ckpt", "data/0", null)]
    [InlineData("storage_too_small.ckpt", "needs 64 elements", null)]
    [InlineData("truncated.ckpt", "end-of-central-directory", null)]
    [InlineData("sdxl.safetensors", "SDXL is not supported", null)]
    public void Generate_BadFile_OneErrorLineNoOutputNoSideEffect(string file, string fragment, string? marker)
    {
        var png = Path.Combine(_tmp, "bad.png");
        var bad = Path.Combine(Dir, "bad", file);
        CliRunner.AssertUserError(["generate", "--model", bad, "--config", Mini, "--prompt", "x", "--output", png], fragment, file);
        var outDir = Path.Combine(_tmp, "bad-converted");
        CliRunner.AssertUserError(["convert", bad, "--config", Mini, "--out", outDir], fragment);
        CliRunner.AssertUserError(["generate", "--model", Mini, "--unet", bad, "--prompt", "x", "--output", png], file);
        Assert.False(File.Exists(png), "an output image was written");
        Assert.False(Directory.Exists(outDir), "an output folder was written");
        if (marker != null) Assert.False(File.Exists(marker), $"the payload ran: {marker} exists");
    }

    [Fact]
    public void Generate_EmaOnFolder_OneErrorLine() =>
        CliRunner.AssertUserError(["generate", "--model", Mini, "--ema", "--prompt", "x", "--output", Path.Combine(_tmp, "x.png")], "--ema");

    [Fact]
    public void Generate_MiniFileWithoutConfig_OneErrorLineSuggestingConfig() =>
        CliRunner.AssertUserError(["generate", "--model", Path.Combine(Dir, "ldm.safetensors"), "--prompt", "x", "--output", Path.Combine(_tmp, "x.png")], "--config DIR");

    [Fact]
    public void Generate_MergeWithoutBase_OneErrorLine() =>
        CliRunner.AssertUserError(["generate", "--model", Mini, "--merge-finetune", Path.Combine(Dir, "finetune"), "--prompt", "x", "--output", Path.Combine(_tmp, "x.png")], "--merge-base");

    [Fact]
    public void Generate_Merge_PngNamesWhatWasMerged()
    {
        var png = Path.Combine(_tmp, "m.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", Mini, "--dw", Path.Combine(Dir, "dW.pt"), "--merge-finetune", Path.Combine(Dir, "finetune"), "--prompt", "x", "--seed", "1", "--output", png);
        Assert.True(code == 0, err);
        var model = Png.Read(png).Text["model"];
        Assert.Contains("dW dW.pt x1", model);
        Assert.Contains("vae and text encoder of finetune", model);
    }
}
