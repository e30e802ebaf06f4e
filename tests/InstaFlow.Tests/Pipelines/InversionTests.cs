// Inversion on the tiny SD-1.5 pipeline: the noise found for the sampler's own output regenerates that output, more
// closely with more fixed-point iterations; the CLI writes latents that `generate --init-latents` takes back.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Pipelines;

public class InversionTests
{
    private static float MaxDiff(Tensor a, Tensor b) => a.ToArray().Zip(b.ToArray(), (x, y) => MathF.Abs(x - y)).Max();

    // With 3 steps (h = 1/3) the fixed point converges on this random UNet; with one step (h = 1) it does not, and
    // the early stop must keep the result no worse than the first estimate.
    [Theory]
    [InlineData(3, 0f, true)]
    [InlineData(3, 2f, true)]
    [InlineData(1, 0f, false)]
    public void InvertLatents_SamplerOutput_RegeneratesIt(int steps, float guidance, bool converges)
    {
        var model = RectifiedFlowPipelineTests.Model;
        var pipe = new RectifiedFlowPipeline(model);
        var target = pipe.Generate(new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 9, Steps = steps, Guidance = guidance });
        var errors = new List<float>();
        foreach (int iterations in new[] { 1, 4, 30 })
        {
            using var scope = TensorScope.Begin();
            var req = new InversionRequest { Prompt = "a photo of a cat", Steps = steps, Guidance = guidance, Iterations = iterations };
            var noise = RectifiedFlowInversion.InvertLatents(model, target.FinalLatents, req);
            var again = pipe.Generate(new GenerationRequest { Prompts = ["a photo of a cat"], Steps = steps, Guidance = guidance, InitLatents = noise });
            errors.Add(MaxDiff(again.FinalLatents, target.FinalLatents));
            again.FinalLatents.Dispose();
        }
        target.FinalLatents.Dispose();
        Console.WriteLine($"steps {steps} guidance {guidance}: regeneration errors {string.Join(", ", errors)}");
        if (converges) Assert.True(errors[2] < 1e-3f, $"30 iterations: regenerated latents differ by {errors[2]}");
        Assert.True(errors[2] <= errors[0] * 1.001f, $"more iterations should not be worse: {string.Join(", ", errors)}");
    }

    [Fact]
    public void InvertCli_Png_WritesLatentsThatGenerateTakes()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-invert-").FullName;
        try
        {
            var tiny = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
            var img = Path.Combine(dir, "img.png");
            var (c0, _, e0) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "a photo of a cat", "--steps", "3", "-o", img]);
            Assert.True(c0 == 0, e0);
            var noise = Path.Combine(dir, "noise.safetensors");
            var (c1, o1, e1) = InstaFlow.Tests.Cli.CliRunner.Run(["invert", "--model", tiny, "--image", img, "--prompt", "a photo of a cat", "--steps", "3", "-o", noise]);
            Assert.True(c1 == 0, e1);
            Assert.Contains("reconstruct with: generate --init-latents", o1);
            var png = Png.Read(img);
            var latents = LatentsFile.Read(noise);
            int f = RectifiedFlowPipelineTests.Model.Vae.Config.ScaleFactor;
            Assert.Equal(new[] { 1, 4, png.Height / f, png.Width / f }, latents.ShapeArray());
            latents.Dispose();
            var (c2, _, e2) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "a photo of a cat", "--steps", "3", "--init-latents", noise, "-o", Path.Combine(dir, "again.png")]);
            Assert.True(c2 == 0, e2);
            InstaFlow.Tests.Cli.CliRunner.AssertUserError(["invert", "--model", tiny, "--image", img, "--prompt", "x", "--iterations", "0", "-o", noise], "--iterations");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void InvertCli_LosslessWebp_GivesTheSameNoiseAsThePng()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-invert-webp-").FullName;
        try
        {
            var tiny = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
            var img = Path.Combine(dir, "img.png");
            var (c0, _, e0) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "a photo of a cat", "--steps", "2", "--seed", "5", "-o", img]);
            Assert.True(c0 == 0, e0);
            var png = Png.Read(img).ToRgbDroppingAlpha();
            var webp = Path.Combine(dir, "img.webp");
            File.WriteAllBytes(webp, InstaFlow.Tests.IO.TestImages.WebpLossless(InstaFlow.Tests.IO.TestImages.ToRgba(png.Pixels), png.Width, png.Height));
            var noise = new[] { img, webp }.Select((input, i) =>
            {
                var path = Path.Combine(dir, $"noise{i}.safetensors");
                var (c, _, e) = InstaFlow.Tests.Cli.CliRunner.Run(["invert", "--model", tiny, "--image", input, "--prompt", "a photo of a cat", "--steps", "2", "--iterations", "2", "-o", path]);
                Assert.True(c == 0, e);
                using var t = LatentsFile.Read(path);
                return t.Span.ToArray();
            }).ToArray();
            Assert.Equal(noise[0], noise[1]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
