// Latent interpolation: slerp/lerp at the ends, the end frames equal plain generation with each prompt and seed, the
// GIF encoder's frames decode (SkiaSharp) to the quantized frames, and the CLI writes PNG frames plus the GIF.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tests.Cli;
using SkiaSharp;

namespace InstaFlow.Tests.Pipelines;

public class InterpolationTests
{
    [Fact]
    public void Slerp_EndsAndMiddle_KeepTheEndsAndTheNorm()
    {
        using var scope = TensorScope.Begin();
        var a = new InstaFlow.Tensors.Random.TorchGenerator(1).Randn(1, 4, 8, 8);
        var b = new InstaFlow.Tensors.Random.TorchGenerator(2).Randn(1, 4, 8, 8);
        TestUtil.AssertClose(a, LatentInterpolation.Slerp(a, b, 0), 1e-6f, what: "alpha 0");
        TestUtil.AssertClose(b, LatentInterpolation.Slerp(a, b, 1), 1e-6f, what: "alpha 1");
        double Norm(Tensor t) => Math.Sqrt(t.ToArray().Sum(x => (double)x * x));
        double mid = Norm(LatentInterpolation.Slerp(a, b, 0.5)), ends = (Norm(a) + Norm(b)) / 2, lerp = Norm(LatentInterpolation.Lerp(a, b, 0.5));
        Assert.True(Math.Abs(mid - ends) < 0.1 * ends && lerp < mid, $"norms: slerp {mid}, ends {ends}, lerp {lerp}");
    }

    [Fact]
    public void Interpolate_EndFrames_EqualGenerationOfEachPrompt()
    {
        var model = RectifiedFlowPipelineTests.Model;
        var res = LatentInterpolation.Run(model, new InterpolationRequest { PromptA = "a photo of a cat", PromptB = "a red car", Frames = 3, Steps = 2, Guidance = 2f, Seed = 11 });
        var pipe = new RectifiedFlowPipeline(model);
        var a = pipe.Generate(new GenerationRequest { Prompts = ["a photo of a cat"], Steps = 2, Guidance = 2f, Seed = 11 });
        var b = pipe.Generate(new GenerationRequest { Prompts = ["a red car"], Steps = 2, Guidance = 2f, Seed = 12 });
        Assert.Equal(3, res.ImagesHwc.Length);
        TestUtil.AssertClose(a.FinalLatents, Ops.Narrow(res.FinalLatents, 0, 0, 1), 1e-5f, what: "first frame");
        TestUtil.AssertClose(b.FinalLatents, Ops.Narrow(res.FinalLatents, 0, 2, 1), 1e-5f, what: "last frame");
        foreach (var r in new[] { res, a, b }) r.FinalLatents.Dispose();
    }

    [Fact]
    public void GifWriter_Frames_DecodeToQuantizedPixels()
    {
        int w = 37, h = 23;
        var frames = Enumerable.Range(0, 3).Select(f =>
        {
            var px = new byte[w * h * 3];
            for (int i = 0; i < px.Length; i++) px[i] = (byte)((i * (7 + f) + f * 50) % 256);
            return px;
        }).ToList();
        var ms = new MemoryStream();
        GifWriter.Write(ms, w, h, frames);
        using var codec = SKCodec.Create(new MemoryStream(ms.ToArray()));
        Assert.Equal(3, codec.FrameCount);
        for (int f = 0; f < 3; f++)
        {
            using var bmp = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
            Assert.Equal(SKCodecResult.Success, codec.GetPixels(bmp.Info, bmp.GetPixels(), new SKCodecOptions(f)));
            int max = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    var c = bmp.GetPixel(x, y);
                    int p = (y * w + x) * 3;
                    max = Math.Max(max, Math.Max(Math.Abs(c.Red - frames[f][p]), Math.Max(Math.Abs(c.Green - frames[f][p + 1]), Math.Abs(c.Blue - frames[f][p + 2]))));
                }
            // the 6x7x6 cube: at most half a level (25.5 of 255) from the input
            Assert.True(max <= 26, $"frame {f}: max difference {max}");
        }
    }

    [Fact]
    public void GenerateInterpolate_Cli_WritesFramesAndGif()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-interp-").FullName;
        try
        {
            var (code, stdout, err) = CliRunner.Run("generate", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--interpolate", "a photo of a cat", "a red car",
                "--frames", "4", "--seed", "3", "-o", Path.Combine(dir, "walk.png"));
            Assert.True(code == 0, err);
            for (int k = 0; k < 4; k++) Assert.True(File.Exists(Path.Combine(dir, $"walk-{k:D3}.png")), $"frame {k} missing; stdout {stdout}");
            using var codec = SKCodec.Create(Path.Combine(dir, "walk.gif"));
            Assert.Equal(4, codec.FrameCount);
        }
        finally { Directory.Delete(dir, true); }
    }
}
