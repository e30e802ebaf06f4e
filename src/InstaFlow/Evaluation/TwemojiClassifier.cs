// A small CNN over the 99 Twemoji subcategories: the feature extractor behind FD-twemoji (its penultimate layer) and
// the judge of prompt accuracy. Trained with cross-entropy on the training split; saved as config.json + safetensors.
using InstaFlow.Models;
using System.Text.Json;
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;
using InstaFlow.Training;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Evaluation;

public sealed class TwemojiClassifier : Module
{
    private readonly Conv2d[] _convs;
    private readonly GroupNorm[] _norms;
    private readonly Linear _head;

    /// <param name="channels">One stride-2 3x3 conv per entry; the last entry is the feature size.</param>
    /// <param name="classes">Subcategory names, one output logit each.</param>
    public TwemojiClassifier(int[] channels, string[] classes)
    {
        Channels = channels; Classes = classes;
        _convs = new Conv2d[channels.Length];
        _norms = new GroupNorm[channels.Length];
        for (int i = 0; i < channels.Length; i++)
        {
            _convs[i] = Child($"convs.{i}", new Conv2d(i == 0 ? 3 : channels[i - 1], channels[i], 3, stride: 2, padding: 1));
            _norms[i] = Child($"norms.{i}", new GroupNorm(Math.Min(8, channels[i]), channels[i], 1e-5f));
        }
        _head = Child("head", new Linear(channels[^1], classes.Length));
    }

    public int[] Channels { get; }
    public string[] Classes { get; }
    public int FeatureSize => Channels[^1];

    /// <summary>images [B, 3, H, W] in [-1, 1] -> penultimate features [B, F] (global average of the last conv).</summary>
    public Tensor Features(Tensor images)
    {
        var h = images;
        for (int i = 0; i < _convs.Length; i++) h = Ops.Silu(_norms[i].Forward(_convs[i].Forward(h)));
        return Ops.Mean(Ops.Reshape(h, h.Dim(0), h.Dim(1), -1), 2);
    }

    public Tensor Logits(Tensor images) => _head.Forward(Features(images));

    /// <summary>Features and predicted classes without gradients, in batches.</summary>
    public (float[] Features, int[] Predictions) Apply(Tensor images, int batch = 128)
    {
        using var _ = GradMode.NoGrad();
        int n = images.Dim(0);
        var feats = new float[n * FeatureSize];
        var preds = new int[n];
        for (int s = 0; s < n; s += batch)
        {
            using var scope = TensorScope.Begin();
            int b = Math.Min(batch, n - s);
            var f = Features(Ops.Narrow(images, 0, s, b));
            f.Span.CopyTo(feats.AsSpan(s * FeatureSize, b * FeatureSize));
            var logits = _head.Forward(f).Span;
            for (int i = 0; i < b; i++)
            {
                int best = 0;
                for (int k = 1; k < Classes.Length; k++) if (logits[i * Classes.Length + k] > logits[i * Classes.Length + best]) best = k;
                preds[s + i] = best;
            }
        }
        return (feats, preds);
    }

    /// <summary>Each image's most likely class and its softmax probability.</summary>
    public (int Class, float Probability)[] Classify(Tensor images)
    {
        using var _ = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        var probs = Ops.Softmax(Logits(images)).Span;
        int k = Classes.Length;
        var result = new (int, float)[images.Dim(0)];
        for (int i = 0; i < result.Length; i++)
        {
            int best = 0;
            for (int j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + best]) best = j;
            result[i] = (best, probs[i * k + best]);
        }
        return result;
    }

    public void Save(string dir)
    {
        DiffusersWriter.WriteJson(Path.Combine(dir, "config.json"), new { architecture = "stride-2 conv + GroupNorm + SiLU stack, global average, linear", channels = Channels, classes = Classes });
        DiffusersWriter.WriteWeights(Path.Combine(dir, "model.safetensors"), this);
    }

    public static TwemojiClassifier Load(string dir)
    {
        var path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: no classifier config.json (train one with instaflow eval classifier)", path);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var channels = doc.RootElement.GetProperty("channels").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var classes = doc.RootElement.GetProperty("classes").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var m = new TwemojiClassifier(channels, classes);
        StateDictLoader.Load(m, Path.Combine(dir, "model.safetensors"));
        return m;
    }
}

/// <summary>
/// Cross-entropy for the trainer, built from ops that exist: sum(logits * const(softmax - onehot)) / B has exactly the
/// cross-entropy gradient, and a constant offset makes its value the cross-entropy, so the log reads as usual.
/// </summary>
public sealed class ClassifierObjective(TwemojiClassifier model, Tensor images, int[] labels, int[] pool, int batchSize) : ITrainingObjective
{
    public Tensor Loss(TorchGenerator rng)
    {
        var idx = TwemojiImages.Draw(rng, pool, batchSize);
        var x = TwemojiImages.Gather(images, idx);
        // horizontal flips: most emoji keep their subcategory mirrored, and 36 images per class need the help
        int h = x.Dim(2), w = x.Dim(3);
        var xs = x.Span;
        for (int b = 0; b < batchSize; b++)
            if (rng.NextFloat() < 0.5f)
                for (int r = 0; r < 3 * h; r++) xs.Slice((b * 3 * h + r) * w, w).Reverse();
        var logits = model.Logits(x);
        int k = logits.Dim(1);
        var l = logits.Span;
        var g = new float[batchSize * k];
        double ce = 0;
        for (int b = 0; b < batchSize; b++)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < k; c++) max = Math.Max(max, l[b * k + c]);
            double z = 0;
            for (int c = 0; c < k; c++) z += Math.Exp(l[b * k + c] - max);
            int y = labels[idx[b]];
            ce += Math.Log(z) + max - l[b * k + y];
            for (int c = 0; c < k; c++) g[b * k + c] = (float)((Math.Exp(l[b * k + c] - max) / z - (c == y ? 1 : 0)) / batchSize);
        }
        var surrogate = Ops.SumAll(Ops.Mul(logits, Tensor.FromArray(g, batchSize, k)));
        return Ops.AddScalar(surrogate, (float)(ce / batchSize) - surrogate.Item());
    }
}
