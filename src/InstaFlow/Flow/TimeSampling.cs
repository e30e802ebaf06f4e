// Training-time distributions of flow time t: uniform on [eps, 1 - eps] and logit-normal (SD3's location/scale).
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Flow;

public abstract class TimeSampler
{
    public abstract float Next(TorchGenerator rng);

    /// <summary>n independent times as a [n] tensor.</summary>
    public Tensor Sample(TorchGenerator rng, int n)
    {
        var t = Tensor.Empty(n);
        var s = t.Span;
        for (int i = 0; i < n; i++) s[i] = Next(rng);
        return t;
    }
}

/// <summary>t ~ U[eps, 1 - eps]; eps keeps the ends (where the target is ill-posed for some losses) out of training.</summary>
public sealed class UniformTime : TimeSampler
{
    public UniformTime(float eps = 1e-3f)
    {
        if (eps < 0 || eps >= 0.5f) throw new InvalidInputException($"uniform time: eps must be in [0, 0.5), got {eps}");
        Eps = eps;
    }

    public float Eps { get; }
    public override float Next(TorchGenerator rng) => Eps + (1 - 2 * Eps) * rng.NextFloat();
}

/// <summary>t = sigmoid(location + scale * n), n ~ N(0, 1): concentrates training on the middle of the path.</summary>
public sealed class LogitNormalTime : TimeSampler
{
    public LogitNormalTime(float location = 0f, float scale = 1f)
    {
        if (!(scale > 0)) throw new InvalidInputException($"logit-normal time: scale must be positive, got {scale}");
        Location = location; Scale = scale;
    }

    public float Location { get; }
    public float Scale { get; }
    public override float Next(TorchGenerator rng) => (float)(1 / (1 + Math.Exp(-(Location + Scale * rng.NextNormalDouble()))));
}
