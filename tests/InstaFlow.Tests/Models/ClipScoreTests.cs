// CLIP score against the transformers/torchmetrics goldens: Pillow-exact bicubic preprocessing, the vision tower with
// its hidden states, text and image embeddings, per-pair scores and the clamped batch mean, torchmetrics' tokenization.
using InstaFlow.Evaluation;
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tests.Models;

public class ClipScoreTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "clip_vision");
    private static readonly Lazy<ClipModel> Model = new(() => ClipModel.Load(Dir).Model);
    private static ClipImageProcessorConfig Processor => ClipImageProcessorConfig.Load(Path.Combine(Dir, "preprocessor_config.json"));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Preprocess_Golden_ExactBytesAndPixels(int j)
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "preprocess.safetensors"));
        var info = g.Info($"image{j}_u8_hwc");
        var (chw, resized, cropped) = ClipScore.Preprocess(g.ReadU8($"image{j}_u8_hwc"), info.Shape[1], info.Shape[0], Processor);
        var gr = g.ReadU8($"debug.resized{j}_u8_hwc");
        Assert.Equal(gr.Length, resized.Length);
        int diffs = gr.Zip(resized, (a, b) => a != b ? 1 : 0).Sum();
        Assert.True(diffs == 0, $"resized image {j}: {diffs} bytes differ from Pillow's, max diff {gr.Zip(resized, (a, b) => Math.Abs(a - b)).Max()}");
        Assert.Equal(g.ReadU8($"debug.cropped{j}_u8_hwc"), cropped);
        TestUtil.AssertClose(g.ReadF32($"pixel_values{j}").Span, chw, 1e-6f, 0, $"pixel_values{j}");
    }

    [Fact]
    public void VisionTower_Golden_MatchesHiddenStatesAndEmbeds()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "image_embeds.safetensors"));
        using var scope = TensorScope.Begin();
        using var _ = GradMode.NoGrad();
        var seen = new Dictionary<string, Tensor>();
        var m = Model.Value;
        m.VisionModel.Hook = (k, t) => seen["debug." + k] = t.Clone();
        try
        {
            var (last, pooled) = m.VisionModel.Forward(g.ReadF32("pixel_values"));
            TestUtil.AssertClose(g.ReadF32("last_hidden_state"), last, 1e-4f, 0, "last_hidden_state");
            TestUtil.AssertClose(g.ReadF32("pooler_output"), pooled, 1e-4f, 0, "pooler_output");
            foreach (var name in g.Names.Where(n => n.StartsWith("debug.", StringComparison.Ordinal)))
                TestUtil.AssertClose(g.ReadF32(name), seen[name], 1e-4f, 0, name);
        }
        finally { m.VisionModel.Hook = null; }
        TestUtil.AssertClose(g.ReadF32("image_embeds"), m.ImageEmbeds(g.ReadF32("pixel_values")), 1e-4f, 0, "image_embeds");
    }

    [Fact]
    public void TextTower_Golden_MatchesEmbeds()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "text_embeds.safetensors"));
        using var scope = TensorScope.Begin();
        using var _ = GradMode.NoGrad();
        var ids = g.ReadI64("input_ids").Select(v => (int)v).ToArray();
        var (last, pooled) = Model.Value.TextModel.Forward(ids, 2);
        TestUtil.AssertClose(g.ReadF32("last_hidden_state"), last, 1e-4f, 0, "last_hidden_state");
        TestUtil.AssertClose(g.ReadF32("pooler_output"), pooled, 1e-4f, 0, "pooler_output");
        TestUtil.AssertClose(g.ReadF32("text_embeds"), Model.Value.TextEmbeds(ids, 2), 1e-4f, 0, "text_embeds");
    }

    [Fact]
    public void Score_Golden_PerPairAndClampedMean()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "clip_score.safetensors"));
        var ids = g.ReadI64("input_ids").Select(v => (int)v).ToArray();
        var (per, score) = ClipScore.Compute(Model.Value, g.ReadF32("pixel_values"), ids, 2);
        TestUtil.AssertClose(g.ReadF32("score").Span, per, 2e-3f, 0, "score");
        TestUtil.AssertClose(per, ClipScore.Compute(Model.Value, g.ReadF32("pixel_values"), ids, 2, chunk: 1).PerPair, 1e-4f, 0, "score in chunks of 1");
        Assert.True(per[0] < 0, "pair 0 scores below zero on purpose");
        Assert.True(Math.Abs(g.ReadF32("torchmetrics_clip_score").ToArray()[0] - score) <= 2e-3f, $"clip score {score}");
    }

    [Fact]
    public void TorchmetricsPath_FromUint8Images_MatchesGolden()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "torchmetrics_clip_score.safetensors"));
        var tokenizer = ClipTokenizer.FromDirectory(Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer"));
        var (ids, len) = ClipScore.Tokenize(tokenizer, ["a cat", "an astronaut riding a horse on the moon"], 77);
        Assert.Equal(g.ReadI64("input_ids").Select(v => (int)v).ToArray(), ids);
        Assert.Equal(10, len);
        var chw = g.ReadU8("images_u8_chw");
        var shape = g.Info("images_u8_chw").Shape;
        int c = shape[1], h = shape[2], w = shape[3];
        var pixels = new float[2 * 3 * 32 * 32];
        for (int b = 0; b < 2; b++)
        {
            var hwc = new byte[h * w * c];
            for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) for (int k = 0; k < c; k++) hwc[(y * w + x) * c + k] = chw[((b * c + k) * h + y) * w + x];
            ClipScore.Preprocess(hwc, w, h, Processor).Chw.CopyTo(pixels, b * 3 * 32 * 32);
        }
        TestUtil.AssertClose(g.ReadF32("pixel_values").Span, pixels, 1e-6f, 0, "pixel_values");
        using var scope = TensorScope.Begin();
        var (per, score) = ClipScore.Compute(Model.Value, Tensor.FromArray(pixels, 2, 3, 32, 32), ids, 2);
        TestUtil.AssertClose(g.ReadF32("score").Span, per, 2e-3f, 0, "score");
        Assert.True(Math.Abs(g.ReadF32("clip_score").ToArray()[0] - score) <= 2e-3f, $"clip score {score} vs {g.ReadF32("clip_score").ToArray()[0]}");
    }

    [Fact]
    public void EvalClipScoreCli_PngsWithPromptChunks_PrintsTheTorchmetricsScore()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "torchmetrics_clip_score.safetensors"));
        var chw = g.ReadU8("images_u8_chw");
        var shape = g.Info("images_u8_chw").Shape;
        int h = shape[2], w = shape[3];
        string[] prompts = ["a cat", "an astronaut riding a horse on the moon"];
        var dir = Directory.CreateTempSubdirectory("instaflow-clip-").FullName;
        try
        {
            var files = new string[2];
            for (int b = 0; b < 2; b++)
            {
                var hwc = new byte[h * w * 3];
                for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) for (int k = 0; k < 3; k++) hwc[(y * w + x) * 3 + k] = chw[((b * 3 + k) * h + y) * w + x];
                files[b] = Path.Combine(dir, $"img{b}.png");
                Png.Write(files[b], w, h, 3, hwc, new Dictionary<string, string> { ["prompt"] = prompts[b] });
            }
            var tok = Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer");
            var (code, stdout, err) = InstaFlow.Tests.Cli.CliRunner.Run(["eval", "clip-score", "--clip", Dir, "--tokenizer", tok, .. files]);
            Assert.True(code == 0, err);
            var last = stdout.Trim().Split('\n')[^1];
            float printed = float.Parse(last.Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(g.ReadF32("clip_score").ToArray()[0] - printed) <= 2e-3f, $"printed {last}");

            var bare = Path.Combine(dir, "bare.png");
            Png.Write(bare, 2, 2, 3, new byte[12]);
            InstaFlow.Tests.Cli.CliRunner.AssertUserError(["eval", "clip-score", "--clip", Dir, "--tokenizer", tok, bare], "bare.png", "--prompt");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void EvalClipScoreCli_FolderWithLosslessWebp_ScoresLikeThePngAndNeedsPrompt()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "torchmetrics_clip_score.safetensors"));
        var chw = g.ReadU8("images_u8_chw");
        var shape = g.Info("images_u8_chw").Shape;
        int h = shape[2], w = shape[3];
        var hwc = new byte[h * w * 3];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) for (int k = 0; k < 3; k++) hwc[(y * w + x) * 3 + k] = chw[(k * h + y) * w + x];
        var dir = Directory.CreateTempSubdirectory("instaflow-clip-webp-").FullName;
        try
        {
            var png = Path.Combine(dir, "img.png");
            Png.Write(png, w, h, 3, hwc);
            var folder = Directory.CreateDirectory(Path.Combine(dir, "webp")).FullName;
            File.WriteAllBytes(Path.Combine(folder, "img.webp"), InstaFlow.Tests.IO.TestImages.WebpLossless(InstaFlow.Tests.IO.TestImages.ToRgba(hwc), w, h));
            File.WriteAllText(Path.Combine(folder, "notes.txt"), "not an image: skipped by the folder listing");
            var tok = Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer");
            string Score(string input)
            {
                var (code, stdout, err) = InstaFlow.Tests.Cli.CliRunner.Run(["eval", "clip-score", "--clip", Dir, "--tokenizer", tok, "--prompt", "a cat", input]);
                Assert.True(code == 0, err);
                return stdout.Trim().Split('\n')[^1];
            }
            Assert.Equal(Score(png), Score(folder));
            InstaFlow.Tests.Cli.CliRunner.AssertUserError(["eval", "clip-score", "--clip", Dir, "--tokenizer", tok, folder], "img.webp", "--prompt");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
