// `instaflow sample` on the tiny fixture: the default scheduler from the model folder and an explicit DDIM config
// reproduce the teacher golden images; bad scheduler settings give one-line errors.
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Cli;

public sealed class TeacherSampleCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-sample-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    /// <summary>Writes the golden's first noise sample as --init-latents and returns the path and image 0 of the golden.</summary>
    private (string Latents, byte[] Image) FirstSample(string golden)
    {
        using var g = SafeTensors.Open(Path.Combine(TeacherPipelineTests.TeacherDir, golden + ".safetensors"));
        using var scope = TensorScope.Begin();
        var noise = g.ReadF32("noise");
        var first = Tensor.FromArray(noise.Span[..(int)(noise.Numel / 2)].ToArray(), 1, 4, 8, 8);
        var path = Path.Combine(_tmp, golden + ".noise.safetensors");
        LatentsFile.Write(path, first);
        var u8 = g.ReadU8("image_u8_hwc");
        return (path, u8[..(u8.Length / 2)]);
    }

    [Fact]
    public void TeacherSample_DefaultSchedulerFromModel_MatchesDpmGolden()
    {
        var (lat, expected) = FirstSample("teacher_dpmpp2m_leading_5");
        var outPng = Path.Combine(_tmp, "dpm.png");
        var saved = Path.Combine(_tmp, "final.safetensors");
        var (code, stdout, err) = CliRunner.Run("sample", "--model", Tiny, "a photo of a cat", "--steps", "5", "--guidance", "6", "--init-latents", lat, "--save-latents", saved, "--output", outPng);
        Assert.True(code == 0, err);
        Assert.Contains(outPng, stdout);
        Assert.Contains("DPMSolverMultistepScheduler", err);
        var img = Png.Read(outPng);
        RectifiedFlowPipelineTests.AssertImagesClose(expected, img.Pixels, "sample dpm++");
        Assert.Equal("DPMSolverMultistepScheduler", img.Text["sampler"]);
        using var f = SafeTensors.Open(saved);
        Assert.Equal(new[] { 1, 4, 8, 8 }, f.Info("latents").Shape);
    }

    [Fact]
    public void TeacherSample_DdimWithSchedulerConfig_MatchesDdimGolden()
    {
        var (lat, expected) = FirstSample("teacher_ddim_leading_5");
        var outPng = Path.Combine(_tmp, "ddim.png");
        var cfg = Path.Combine(TeacherPipelineTests.TeacherDir, "teacher_ddim_leading_5.scheduler_config.json");
        var (code, _, err) = CliRunner.Run("sample", "--model", Tiny, "--prompt", "a photo of a cat", "--scheduler", "ddim", "--scheduler-config", cfg,
            "--steps", "5", "--guidance", "6", "--init-latents", lat, "--output", outPng);
        Assert.True(code == 0, err);
        RectifiedFlowPipelineTests.AssertImagesClose(expected, Png.Read(outPng).Pixels, "sample ddim");
    }

    [Fact]
    public void TeacherSample_KarrasSigmasConfig_OneLineErrorNamesKey()
    {
        var cfg = Path.Combine(_tmp, "karras.json");
        File.WriteAllText(cfg, File.ReadAllText(Path.Combine(Tiny, "scheduler", "scheduler_config.json")).Replace("\"use_karras_sigmas\": false", "\"use_karras_sigmas\": true"));
        CliRunner.AssertUserError(new[] { "sample", "--model", Tiny, "a cat", "--scheduler-config", cfg, "--output", Path.Combine(_tmp, "k.png") }, "use_karras_sigmas", "true");
    }

    [Fact]
    public void TeacherSample_MissingSchedulerConfig_OneLineError() =>
        CliRunner.AssertUserError(new[] { "sample", "--model", Tiny, "a cat", "--scheduler-config", Path.Combine(_tmp, "none.json"), "--output", Path.Combine(_tmp, "k.png") }, "scheduler config not found");
}
