// Optimizers (AdamW with decoupled weight decay and bias correction, SGD with momentum), global-norm gradient
// clipping, and an exponential moving average of parameters. State tensors are persistent and checkpointable.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Nn;

public abstract class Optimizer
{
    protected Optimizer(IEnumerable<Parameter> parameters) { Params = parameters.ToList(); }

    public IReadOnlyList<Parameter> Params { get; }
    public float LearningRate { get; set; }
    public long StepCount { get; protected set; }

    public abstract void Step();
    public void ZeroGrad() { foreach (var p in Params) p.ZeroGrad(); }

    /// <summary>Named state tensors (moments, step) so that training can resume exactly.</summary>
    public abstract IEnumerable<(string Name, Tensor Value)> State();
    public abstract void LoadState(IReadOnlyDictionary<string, Tensor> state, long step);
}

public sealed unsafe class AdamW : Optimizer
{
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.999f;
    public float Eps { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 1e-2f;
    private readonly Tensor[] _m, _v;

    public AdamW(IEnumerable<Parameter> parameters, float lr) : base(parameters)
    {
        LearningRate = lr;
        _m = Params.Select(p => Zeros(p.Shape)).ToArray();
        _v = Params.Select(p => Zeros(p.Shape)).ToArray();
    }

    private static Tensor Zeros(int[] shape) { var t = Tensor.EmptyPersistent(shape); t.Span.Clear(); return t; }

    public override void Step() => Step(1f, null);

    /// <summary>
    /// One pass over each parameter: its gradient times gradScale (the clipping factor of
    /// <see cref="GradClip.Scale"/>; the stored gradient is left as it is), the AdamW update, then the EMA of the
    /// updated weight when ema is given. Each element gets the same operations in the same order as the separate
    /// clip, step and EMA passes, vectorized and in parallel, so the result does not depend on either.
    /// </summary>
    public void Step(float gradScale, Ema? ema)
    {
        if (ema != null && !ReferenceEquals(ema.Params, Params) && !ema.Params.SequenceEqual(Params))
            throw new ArgumentException("AdamW.Step: the EMA follows other parameters than the optimizer");
        StepCount++;
        var k = new AdamWStep(LearningRate, Beta1, Beta2, Eps, WeightDecay, StepCount, gradScale, ema?.Decay ?? 0f);
        for (int i = 0; i < Params.Count; i++)
        {
            var g = Params[i].Grad;
            if (g == null)
            {
                // no gradient, no update: the EMA still moves toward the (unchanged) weight, as Ema.Update does
                ema?.Update(i);
                continue;
            }
            float* w = Params[i].Value.Data, pg = g.Data, m = _m[i].Data, v = _v[i].Data;
            float* shadow = ema != null ? ema.Shadow[i].Data : null;
            Par.ForRange(g.Numel, 1 << 14, (s, e) => k.Run(w + s, pg + s, m + s, v + s, shadow == null ? null : shadow + s, e - s));
        }
    }
    public override IEnumerable<(string Name, Tensor Value)> State()
    {
        for (int i = 0; i < Params.Count; i++) { yield return ($"m.{i}", _m[i]); yield return ($"v.{i}", _v[i]); }
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, long step)
    {
        for (int i = 0; i < Params.Count; i++) { Restore(state, $"m.{i}", _m[i]); Restore(state, $"v.{i}", _v[i]); }
        StepCount = step;
    }

    internal static void Restore(IReadOnlyDictionary<string, Tensor> state, string key, Tensor into)
    {
        if (!state.TryGetValue(key, out var t)) throw new InvalidInputException($"optimizer state is missing '{key}'");
        if (!ShapeUtil.SameShape(t.Shape, into.Shape)) throw new InvalidInputException($"optimizer state '{key}' has shape {t.Describe()}, expected {into.Describe()}");
        into.CopyFrom(t);
    }
}

public sealed unsafe class Sgd : Optimizer
{
    public float Momentum { get; init; }
    public float WeightDecay { get; init; }
    private readonly Tensor[] _buf;

    public Sgd(IEnumerable<Parameter> parameters, float lr, float momentum = 0f) : base(parameters)
    {
        LearningRate = lr;
        Momentum = momentum;
        _buf = Params.Select(p => { var t = Tensor.EmptyPersistent(p.Shape); t.Span.Clear(); return t; }).ToArray();
    }

    public override void Step()
    {
        StepCount++;
        for (int i = 0; i < Params.Count; i++)
        {
            var g = Params[i].Grad;
            if (g == null) continue;
            float* w = Params[i].Value.Data, pg = g.Data, b = _buf[i].Data;
            float lr = LearningRate, mu = Momentum, wd = WeightDecay;
            for (long j = 0; j < g.Numel; j++)
            {
                float d = pg[j] + wd * w[j];
                b[j] = mu * b[j] + d;
                w[j] -= lr * (mu != 0 ? b[j] : d);
            }
        }
    }

    public override IEnumerable<(string Name, Tensor Value)> State()
    {
        for (int i = 0; i < Params.Count; i++) yield return ($"momentum.{i}", _buf[i]);
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, long step)
    {
        for (int i = 0; i < Params.Count; i++) AdamW.Restore(state, $"momentum.{i}", _buf[i]);
        StepCount = step;
    }
}

public static unsafe class GradClip
{
    /// <summary>Scales all gradients so that their global L2 norm is at most maxNorm; returns the norm before clipping.</summary>
    public static float ClipGlobalNorm(IEnumerable<Parameter> parameters, float maxNorm)
    {
        var grads = parameters.Select(p => p.Grad).Where(g => g != null).ToList();
        float norm = GlobalNorm(grads!);
        float s = ScaleFor(norm, maxNorm);
        if (s != 1f)
            foreach (var g in grads) Blas.Scale(s, g!.Data, g.Numel);
        return norm;
    }

    /// <summary>The factor ClipGlobalNorm would scale the gradients by (1 when within maxNorm), leaving them as they are.</summary>
    public static float Scale(IEnumerable<Parameter> parameters, float maxNorm) =>
        ScaleFor(GlobalNorm(parameters.Select(p => p.Grad).Where(g => g != null).ToList()!), maxNorm);

    private static float GlobalNorm(List<Tensor> grads)
    {
        double sq = 0;
        foreach (var g in grads) sq += Blas.Dot(g.Data, g.Data, g.Numel);
        return (float)Math.Sqrt(sq);
    }

    private static float ScaleFor(float norm, float maxNorm) => norm > maxNorm && norm > 0 ? maxNorm / (norm + 1e-6f) : 1f;
}

/// <summary>ema = decay * ema + (1 - decay) * param, kept in separate persistent tensors.</summary>
public sealed unsafe class Ema
{
    private readonly IReadOnlyList<Parameter> _params;
    public Tensor[] Shadow { get; }
    public float Decay { get; }

    public Ema(IEnumerable<Parameter> parameters, float decay)
    {
        _params = parameters.ToList();
        Decay = decay;
        Shadow = _params.Select(p => { var t = Tensor.EmptyPersistent(p.Shape); t.CopyFrom(p.Value); return t; }).ToArray();
    }

    internal IReadOnlyList<Parameter> Params => _params;

    public void Update()
    {
        for (int i = 0; i < _params.Count; i++) Update(i);
    }

    /// <summary>Moves the shadow of parameter i toward its current value.</summary>
    internal void Update(int i)
    {
        float* s = Shadow[i].Data, w = _params[i].Value.Data;
        var k = new AdamWStep(0, 0, 0, 0, 0, 1, 1f, Decay);
        Par.ForRange(Shadow[i].Numel, 1 << 14, (a, e) => k.Ema(s + a, w + a, e - a));
    }

    /// <summary>Copies the averaged values into the live parameters (e.g. before saving an EMA model).</summary>
    public void CopyTo()
    {
        for (int i = 0; i < _params.Count; i++) _params[i].Value.CopyFrom(Shadow[i]);
    }
}
