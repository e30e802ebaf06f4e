// The basic layers (PyTorch semantics and parameter names): Linear, Conv2d, GroupNorm, LayerNorm, Embedding, eval-mode BatchNorm2d.
using InstaFlow.Tensors;

namespace InstaFlow.Nn;

public sealed class Linear : Module
{
    public readonly int InFeatures, OutFeatures;
    public readonly Parameter Weight;
    public readonly Parameter? Bias;

    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        InFeatures = inFeatures; OutFeatures = outFeatures;
        Weight = StoredPrecisionParam("weight", outFeatures, inFeatures);
        Bias = bias ? Param("bias", outFeatures) : null;
    }

    // x: [.., in] -> [.., out]
    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight.Value, Bias?.Value);

    protected override void InitOwn(InitRandom rng)
    {
        float bound = 1f / MathF.Sqrt(InFeatures);
        rng.Uniform(Weight.Value, bound);
        if (Bias != null) rng.Uniform(Bias.Value, bound);
    }
}

public sealed class Conv2d : Module
{
    public readonly int InChannels, OutChannels, Kernel, Stride, Padding;
    public readonly Parameter Weight;
    public readonly Parameter? Bias;

    public Conv2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0, bool bias = true)
    {
        InChannels = inChannels; OutChannels = outChannels; Kernel = kernel; Stride = stride; Padding = padding;
        Weight = StoredPrecisionParam("weight", outChannels, inChannels, kernel, kernel);
        Bias = bias ? Param("bias", outChannels) : null;
    }

    // x: [B, Cin, H, W] -> [B, Cout, H', W']
    public Tensor Forward(Tensor x) => Ops.Conv2d(x, Weight.Value, Bias?.Value, Stride, Padding);

    /// <summary>With explicit (top, bottom, left, right) zero padding instead of the layer's own.</summary>
    public Tensor Forward(Tensor x, int padTop, int padBottom, int padLeft, int padRight) =>
        Ops.Conv2d(x, Weight.Value, Bias?.Value, Stride, padTop, padBottom, padLeft, padRight);

    protected override void InitOwn(InitRandom rng)
    {
        float bound = 1f / MathF.Sqrt(InChannels * Kernel * Kernel);
        rng.Uniform(Weight.Value, bound);
        if (Bias != null) rng.Uniform(Bias.Value, bound);
    }
}

public sealed class GroupNorm : Module
{
    public readonly int Groups, Channels;
    public readonly float Eps;
    public readonly Parameter Weight, Bias;

    public GroupNorm(int groups, int channels, float eps)
    {
        if (groups <= 0 || channels % groups != 0)
            throw new ArgumentException($"GroupNorm: {channels} channels cannot be split into {groups} groups (norm_num_groups must divide every block's channel count)");
        Groups = groups; Channels = channels; Eps = eps;
        Weight = Param("weight", channels);
        Bias = Param("bias", channels);
    }

    // x: [B, C, H, W]
    public Tensor Forward(Tensor x) => Ops.GroupNorm(x, Groups, Weight.Value, Bias.Value, Eps);

    protected override void InitOwn(InitRandom rng) { Weight.Value.Span.Fill(1f); Bias.Value.Span.Clear(); }
}

public sealed class LayerNorm : Module
{
    public readonly int Features;
    public readonly float Eps;
    public readonly Parameter Weight, Bias;

    public LayerNorm(int features, float eps)
    {
        Features = features; Eps = eps;
        Weight = Param("weight", features);
        Bias = Param("bias", features);
    }

    // x: [.., features]
    public Tensor Forward(Tensor x) => Ops.LayerNorm(x, Weight.Value, Bias.Value, Eps);

    protected override void InitOwn(InitRandom rng) { Weight.Value.Span.Fill(1f); Bias.Value.Span.Clear(); }
}

public sealed class Embedding : Module
{
    public readonly int Count, Dim;
    public readonly Parameter Weight;

    public Embedding(int count, int dim) { Count = count; Dim = dim; Weight = Param("weight", count, dim); }

    // ids: [..] -> [.., dim]
    public Tensor Forward(int[] ids, params int[] shape) => Ops.Embedding(Weight.Value, ids, shape);

    protected override void InitOwn(InitRandom rng) => rng.Normal(Weight.Value, 0.02f);
}

/// <summary>
/// BatchNorm2d in eval mode only (running statistics, no updates): the running stats are loaded like parameters under
/// PyTorch's names `running_mean` and `running_var`. `num_batches_tracked` is not kept.
/// </summary>
public sealed class BatchNorm2d : Module
{
    public readonly int Channels;
    public readonly float Eps;
    public readonly Parameter Weight, Bias, RunningMean, RunningVar;

    public BatchNorm2d(int channels, float eps)
    {
        Channels = channels; Eps = eps;
        Weight = Param("weight", channels);
        Bias = Param("bias", channels);
        RunningMean = Param("running_mean", channels);
        RunningVar = Param("running_var", channels);
    }

    // x: [B, C, H, W]
    public Tensor Forward(Tensor x, bool relu = false) =>
        Ops.BatchNormInference(x, RunningMean.Value, RunningVar.Value, Weight.Value, Bias.Value, Eps, relu);

    protected override void InitOwn(InitRandom rng)
    {
        Weight.Value.Span.Fill(1f); Bias.Value.Span.Clear();
        RunningMean.Value.Span.Clear(); RunningVar.Value.Span.Fill(1f);
    }
}
