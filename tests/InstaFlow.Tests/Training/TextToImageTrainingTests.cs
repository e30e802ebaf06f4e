// The Twemoji trainers at toy scale: a few steps of the VAE, the text-conditioned flow and the classifier lower their
// losses; a trained flow writes a diffusers folder that loads and generates; the classifier loss is cross-entropy.
using InstaFlow.Evaluation;
using InstaFlow.Flow;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Vae;
using InstaFlow.Models;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Training.Data;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Tests.Training;

public class TextToImageTrainingTests
{
    // Smooth colour gradients, a different one per image: learnable in a few steps, unlike noise.
    private static Tensor Images(int n, int size)
    {
        var t = Tensor.EmptyPersistent(n, 3, size, size);
        var s = t.Span;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                        s[((b * 3 + c) * size + y) * size + x] = MathF.Sin(0.3f * (b + 1) * (c + 1) + 0.2f * x - 0.1f * y * (b % 3));
        return t;
    }

    private static (float First, float Last) Train(InstaFlow.Nn.Module m, ITrainingObjective o, int steps, float lr)
    {
        var t = new Trainer(m, o, new TrainerOptions { LearningRate = lr, Seed = 5 });
        var losses = new List<float>();
        for (int i = 1; i <= steps; i++) { t.Train(i); losses.Add(t.LastLoss); }
        return (losses.Take(3).Average(), losses.TakeLast(3).Average());
    }

    [Fact]
    public void Vae_FewSteps_LowerTheLoss()
    {
        var vae = new AutoencoderKL(new AutoencoderKLConfig { BlockOutChannels = [8, 8], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = 16 });
        vae.InitDefault(1);
        var (first, last) = Train(vae, new VaeObjective(vae, Images(6, 16), [0, 1, 2, 3, 4, 5], 4, 1e-4f), 25, 3e-3f);
        Assert.True(last < 0.7f * first, $"VAE loss {first} -> {last}");
    }

    [Fact]
    public void TextFlow_FewSteps_LowerTheLoss_AndTheFolderLoadsAndGenerates()
    {
        var tokenizer = ClipTokenizer.FromDirectory(Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer"));
        var items = new[]
        {
            new TwemojiItem("a.png", "red apple", ["apple"], "Food", "food-fruit", false),
            new TwemojiItem("b.png", "blue car", ["car", "automobile"], "Travel", "transport-ground", false),
        };
        var captions = CaptionTable.Build(items, [0, 1], tokenizer, 8);
        Assert.Equal(["red apple", "apple", "blue car", "car", "automobile"], captions.Texts);
        Assert.Equal([0, 0, 1, 1, 1], captions.Items);

        var vaeCfg = new AutoencoderKLConfig { BlockOutChannels = [8, 8], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = 16 };
        var arch = new FlowArchitecture { TextHidden = 16, TextLayers = 1, TextHeads = 2, MaxTokens = 8, UnetChannels = [16, 16], UnetHeads = 2, NormGroups = 4 };
        var net = TextToImageTraining.NewNetwork(arch, vaeCfg, tokenizer.VocabSize, 3);
        var latents = TestUtil.Random(9, 2, 4, 8, 8);
        var pairs = new IndependentCoupling([4, 8, 8], (rng, b) =>
        {
            var caps = captions.DrawCaptions(rng, b);
            return (TwemojiImages.Gather(latents, caps.Select(c => captions.Items[c]).ToArray()), captions.Lookup(caps));
        });
        var objective = new RectifiedFlowObjective(new FlowModel(net, FlowConvention.InstaFlow), pairs, new UniformTime(), 8, new CondDropout(0.1f, captions.NullIds));
        var (first, last) = Train(net, objective, 30, 3e-3f);
        Assert.True(last < 0.8f * first, $"flow loss {first} -> {last}");

        var dir = Path.Combine(Path.GetTempPath(), "instaflow-t2i-" + Guid.NewGuid().ToString("N"));
        try
        {
            var vae = new AutoencoderKL(vaeCfg);
            vae.InitDefault(2);
            DiffusersWriter.WritePipeline(dir, net.Text, net.Unet, vae, Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer"));
            using var loaded = SdComponents.Load(dir);
            Assert.All(loaded.Reports, r => Assert.True(r.IsComplete, r.Describe()));
            Assert.Equal(8, loaded.TextEncoder.Config.MaxPositionEmbeddings);
            var res = new RectifiedFlowPipeline(loaded).Generate(new GenerationRequest { Prompts = ["red apple"], Steps = 2, Guidance = 2f });
            res.FinalLatents.Dispose();
            Assert.Equal((16, 16), (res.Width, res.Height));
        }
        finally { Directory.Delete(dir, true); }
    }

    // One emoji with five skin-tone variations and two without: per image the first emoji gets 6 of 8 draws, per emoji
    // a third, and each variation a fifth of its emoji's share.
    [Fact]
    public void CaptionTable_PerEmoji_DrawsEveryEmojiEquallyOften()
    {
        var tokenizer = ClipTokenizer.FromDirectory(Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer"));
        var tones = new[] { "light", "medium-light", "medium", "medium-dark", "dark" };
        var items = tones.Select(t => new TwemojiItem($"{t}.png", $"thumbs up sign: {t} skin tone", ["hand"], "People", "hand", false))
            .Append(new TwemojiItem("up.png", "thumbs up sign", ["hand"], "People", "hand", false))
            .Append(new TwemojiItem("a.png", "red apple", ["apple"], "Food", "food-fruit", false))
            .Append(new TwemojiItem("r.png", "rocket", [], "Travel", "transport-air", false)).ToList();
        var captions = CaptionTable.Build(items, Enumerable.Range(0, items.Count).ToArray(), tokenizer, 8);
        Assert.Equal(3, captions.Emojis.Length);
        Assert.Equal([0, 1, 2, 3, 4, 5], captions.Emojis[0]);

        const int n = 60000;
        double[] Shares(CaptionSampling s)
        {
            var drawn = captions.DrawCaptions(new InstaFlow.Tensors.Random.TorchGenerator(11), n, s);
            var share = new double[items.Count];
            foreach (int c in drawn) share[captions.Items[c]] += 1.0 / n;
            return share;
        }
        var perEmoji = Shares(CaptionSampling.PerEmoji);
        var perImage = Shares(CaptionSampling.PerImage);
        // 4 standard deviations of a share near 1/3 over 60,000 draws is 0.008
        double[] wantEmoji = [.. Enumerable.Repeat(1.0 / 18, 6), 1.0 / 3, 1.0 / 3];
        double[] wantImage = [.. Enumerable.Repeat(1.0 / 8, 8)];
        double diffEmoji = perEmoji.Zip(wantEmoji, (a, b) => Math.Abs(a - b)).Max(), diffImage = perImage.Zip(wantImage, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diffEmoji < 0.008, $"per emoji: shares {string.Join(", ", perEmoji.Select(x => x.ToString("F4")))}, max diff {diffEmoji:F4}");
        Assert.True(diffImage < 0.008, $"per image: shares {string.Join(", ", perImage.Select(x => x.ToString("F4")))}, max diff {diffImage:F4}");
    }

    [Fact]
    public void Classifier_LossIsCrossEntropy_AndFalls()
    {
        var model = new TwemojiClassifier([8, 8], ["dark", "light"]);
        model.InitDefault(4);
        var images = Tensor.EmptyPersistent(8, 3, 16, 16);
        // a bright centre in the red (class 0) or blue (class 1) channel: GroupNorm would erase flat colours, and
        // horizontal flips leave a centred square alone
        images.Span.Fill(-0.8f);
        for (int b = 0; b < 8; b++)
            for (int y = 5; y < 11; y++) images.Span.Slice(((b * 3 + (b % 2 == 0 ? 0 : 2)) * 16 + y) * 16 + 5, 6).Fill(0.8f);
        int[] labels = [0, 1, 0, 1, 0, 1, 0, 1];
        var objective = new ClassifierObjective(model, images, labels, Enumerable.Range(0, 8).ToArray(), 8);

        // the reported value must be the cross-entropy of the logits of the drawn batch (flips leave these images alone)
        using (var scope = TensorScope.Begin())
        {
            var loss = objective.Loss(new InstaFlow.Tensors.Random.TorchGenerator(1)).Item();
            var idx = TwemojiImages.Draw(new InstaFlow.Tensors.Random.TorchGenerator(1), Enumerable.Range(0, 8).ToArray(), 8);
            var logits = model.Logits(TwemojiImages.Gather(images, idx)).Span;
            double ce = 0;
            for (int b = 0; b < 8; b++)
            {
                double z = Math.Log(Math.Exp(logits[b * 2]) + Math.Exp(logits[b * 2 + 1]));
                ce += z - logits[b * 2 + labels[idx[b]]];
            }
            Assert.Equal(ce / 8, loss, 4);
        }
        var (first, last) = Train(model, objective, 60, 3e-2f);
        Assert.True(last < 0.5f * first, $"classifier loss {first} -> {last}");
        Assert.Equal(labels, model.Apply(images).Predictions);
    }

    [Fact]
    public void RealReference_SameImagesAsTheRealSet_FdIsZero_OtherImages_FdIsPositive()
    {
        var model = new TwemojiClassifier([8, 8], ["a", "b"]);
        model.InitDefault(2);
        var images = new InstaFlow.Tensors.Random.TorchGenerator(3).Randn(12, 3, 16, 16);
        // items 8..11 are smooth stripes instead of white noise, so their features differ
        for (int b = 8; b < 12; b++)
            for (int p = 0; p < 3 * 16 * 16; p++) images.Span[b * 3 * 16 * 16 + p] = MathF.Sin(0.4f * (p % 16) * (b - 6) + p / 256);
        int[] labels = Enumerable.Range(0, 12).Select(i => i % 2).ToArray();
        int[] train = [0, 1, 2, 3, 4, 5, 6, 7];
        // n = 4 evenly spread over the training split picks items 0, 2, 4, 6
        var (same, _) = model.Apply(TwemojiImages.Gather(images, new[] { 0, 2, 4, 6 }));
        var row = TwemojiEval.RealReference(images, labels, train, model, 4, same, 4);
        Assert.True(Math.Abs(row.FdTwemoji) < 1e-6, $"FD of a set against itself: {row.FdTwemoji}");
        Assert.Equal("real training images", row.Name);

        var (other, _) = model.Apply(TwemojiImages.Gather(images, new[] { 8, 9, 10, 11 }));
        var far = TwemojiEval.RealReference(images, labels, train, model, 4, other, 4);
        Assert.True(far.FdTwemoji > 1e-3, $"FD against other images: {far.FdTwemoji}");
    }

    [Fact]
    public void TrainBench_TinyArchitecture_CountsForwardAndBackwardFlops()
    {
        var a = new FlowArchitecture { TextHidden = 16, TextHeads = 2, TextLayers = 1, UnetChannels = [8, 16], UnetHeads = 2, NormGroups = 4 };
        var r = TrainBench.Run(batch: 2, runs: 1, threads: 1, a);
        // the same step's forward alone, counted here, is about a third of a whole step's work
        var net = TextToImageTraining.NewNetwork(a, TrainBench.TwemojiVae, 49408, 0);
        long forward;
        using (var scope = TensorScope.Begin())
        {
            FlopCounter.Reset();
            FlopCounter.Enabled = true;
            try
            {
                var ids = Tensor.Zeros(2, a.MaxTokens);
                net.Forward(Tensor.Zeros(2, 4, 16, 16), Tensor.FromArray([500f, 500f], 2), ids);
                forward = FlopCounter.Flops;
            }
            finally { FlopCounter.Enabled = false; }
        }
        Assert.Equal(net.ParameterCount, r.Parameters);
        double ratio = (double)r.FlopsPerStep / forward;
        Assert.True(ratio is > 2.5 and < 3.5, $"a training step counted {r.FlopsPerStep} FLOPs, {ratio:F2}x the forward's {forward}");
        Assert.True(r.MedianSeconds > 0 && r.PeakGflops > 0, $"{r}");
    }

    [Fact]
    public void LpipsLatentLoss_TinyVae_ZeroForEqualLatents_AndDescentLowersIt()
    {
        using var parts = SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));
        parts.Vae.SetRequiresGrad(false);
        var dir = Path.Combine(TestUtil.Fixtures, "lpips");
        var (lpips, _) = InstaFlow.Models.Lpips.Lpips.Load(Path.Combine(dir, "vgg16_features.safetensors"), Path.Combine(dir, "lpips_vgg_v0.1_lin.safetensors"));
        var loss = new LpipsLatentLoss(parts.Vae, lpips);
        int h = parts.Unet.Config.SampleSize;
        var rng = new InstaFlow.Tensors.Random.TorchGenerator(21);
        var target = rng.Randn(2, 4, h, h);
        // the two decodes take the fused and the plain group norm + SiLU paths: equal up to rounding
        using (var scope = TensorScope.Begin())
        {
            float same = loss.Loss(target, target).Item();
            Assert.True(same < 1e-9f, $"LPIPS of equal latents: {same}");
        }

        var x = rng.Randn(2, 4, h, h).ToArray();
        float first = 0, last = 0;
        for (int step = 0; step < 12; step++)
        {
            using var scope = TensorScope.Begin();
            var p = Tensor.FromArray(x, 2, 4, h, h);
            p.RequiresGrad = true;
            var l = loss.Loss(p, target);
            l.Backward();
            if (step == 0) first = l.Item();
            last = l.Item();
            var g = p.Grad!.ToArray();
            double norm = Math.Sqrt(g.Sum(v => (double)v * v));
            Assert.True(norm > 0, "no gradient reached the predicted latents");
            for (int i = 0; i < x.Length; i++) x[i] -= (float)(0.5 * g[i] / norm);
        }
        Assert.All(parts.Vae.Parameters(), q => Assert.Null(q.Grad));
        Assert.True(last < 0.8f * first, $"LPIPS {first} -> {last} after 12 normalized descent steps");
    }
}
