// Modules and parameters. State-dict names are attribute paths (`down_blocks.0.resnets.1.conv1.weight`), built
// from the names children and parameters are registered under, exactly as diffusers/transformers name them.
using InstaFlow.Tensors;

namespace InstaFlow.Nn;

/// <summary>A named, trainable tensor slot. Loading replaces Value (zero-copy when the file is memory-mapped).</summary>
public sealed class Parameter
{
    public Parameter(int[] shape) { Shape = shape; Value = Tensor.EmptyPersistent(shape); Value.RequiresGrad = true; }

    public int[] Shape { get; }
    public Tensor Value { get; private set; }
    public Tensor? Grad => Value.Grad;

    /// <summary>Set by layers whose op reads F16/BF16 weights (Linear, Conv2d): the loader may keep this one as stored.</summary>
    public bool AcceptsStoredPrecision { get; init; }

    public void Replace(Tensor t)
    {
        if (!ShapeUtil.SameShape(t.Shape, Shape))
            throw new ArgumentException($"parameter of shape {ShapeUtil.Format(Shape)} cannot take a tensor of shape {t.Describe()}");
        var old = Value;
        // A reduced-precision weight is for inference only; it never asks for a gradient.
        t.RequiresGrad = old.RequiresGrad && t.DType == TensorDType.F32;
        // The new values are packed afresh on first use (the old tensor's packs go with it), if the old ones were.
        t.PackMaxRows = old.PackMaxRows;
        Value = t;
        if (!ReferenceEquals(old, t)) old.Dispose();
    }

    public void ZeroGrad() { Value.Grad?.Dispose(); Value.Grad = null; }
}

public abstract class Module
{
    private readonly List<(string Name, Module Child)> _children = new();
    private readonly List<(string Name, Parameter Param)> _params = new();

    protected T Child<T>(string name, T module) where T : Module { _children.Add((name, module)); return module; }
    protected Parameter Param(string name, params int[] shape) => Register(name, new Parameter(shape));

    /// <summary>A parameter that the loader may keep in its stored F16/BF16 precision (only for ops that read it so).</summary>
    protected Parameter StoredPrecisionParam(string name, params int[] shape) => Register(name, new Parameter(shape) { AcceptsStoredPrecision = true });

    private Parameter Register(string name, Parameter p) { _params.Add((name, p)); return p; }

    public IEnumerable<(string Name, Parameter Param)> NamedParameters(string prefix = "")
    {
        foreach (var (n, p) in _params) yield return (prefix + n, p);
        foreach (var (n, c) in _children)
            foreach (var x in c.NamedParameters(prefix + n + ".")) yield return x;
    }

    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(x => x.Param);
    public long ParameterCount => Parameters().Sum(p => ShapeUtil.Numel(p.Shape));

    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix.TrimEnd('.'), this);
        foreach (var (n, c) in _children)
            foreach (var x in c.NamedModules(prefix + n + ".")) yield return x;
    }

    /// <summary>Frees every parameter's storage (memory-mapped weights are unmapped): the module cannot run afterwards.</summary>
    public void FreeWeights()
    {
        foreach (var p in Parameters()) p.Value.Dispose();
    }

    public void SetRequiresGrad(bool on)
    {
        foreach (var (name, p) in NamedParameters())
        {
            if (on && p.Value.DType != TensorDType.F32)
                throw new InvalidOperationException($"parameter '{name}' is kept in its stored precision ({p.Value.DType}), which is for inference only; load the model with WeightPrecision.Float32 to train it");
            p.Value.RequiresGrad = on;
        }
    }
    public void ZeroGrad() { foreach (var p in Parameters()) p.ZeroGrad(); }

    /// <summary>
    /// Loads tensors by name. Shapes must match (the error names the key and both shapes). Returns the missing and
    /// unexpected keys; with strict, either list being non-empty is an error.
    /// </summary>
    public LoadReport LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true, string source = "state dict", IEnumerable<string>? ignoredKeys = null)
    {
        var ignore = new HashSet<string>(ignoredKeys ?? Array.Empty<string>());
        var own = NamedParameters().ToDictionary(x => x.Name, x => x.Param);
        var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var unexpected = state.Keys.Where(k => !own.ContainsKey(k) && !ignore.Contains(k)).ToList();
        var report = new LoadReport(missing, unexpected, source);
        if (strict && !report.IsComplete) throw new InvalidInputException(report.Describe());
        foreach (var (name, p) in own)
        {
            if (!state.TryGetValue(name, out var t)) continue;
            if (!ShapeUtil.SameShape(t.Shape, p.Shape))
                throw new InvalidInputException($"{source}: tensor '{name}' has shape {ShapeUtil.Format(t.Shape)} but the model built from its config expects {ShapeUtil.Format(p.Shape)}; the weights do not belong to this config");
            p.Replace(t);
        }
        return report;
    }

    public Dictionary<string, Tensor> StateDict() => NamedParameters().ToDictionary(x => x.Name, x => x.Param.Value);

    /// <summary>PyTorch's default init for every registered layer (uniform +-1/sqrt(fan_in)); norms: ones and zeros.</summary>
    public void InitDefault(ulong seed)
    {
        var rng = new InitRandom(seed);
        foreach (var (_, m) in NamedModules()) m.InitOwn(rng);
    }

    protected virtual void InitOwn(InitRandom rng) { }
}

public sealed record LoadReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, string Source)
{
    /// <summary>Problems that do not stop the load, e.g. a tensor that is entirely NaN/Inf; front ends show them.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public bool IsComplete => Missing.Count == 0 && Unexpected.Count == 0;

    public string Describe()
    {
        string List(IReadOnlyList<string> l) => string.Join(", ", l.Take(8)) + (l.Count > 8 ? $", ... ({l.Count} in all)" : "");
        var parts = new List<string>();
        if (Missing.Count > 0) parts.Add($"{Missing.Count} missing keys: {List(Missing)}");
        if (Unexpected.Count > 0) parts.Add($"{Unexpected.Count} unexpected keys: {List(Unexpected)}");
        return parts.Count == 0 ? $"{Source}: all keys loaded" : $"{Source}: {string.Join("; ", parts)} (the weights do not match the config)";
    }
}

/// <summary>Deterministic initializer stream (SplitMix64): independent of the sampling generators.</summary>
public sealed class InitRandom(ulong seed)
{
    private ulong _s = seed;

    public double NextDouble()
    {
        ulong z = _s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    public void Uniform(Tensor t, float bound)
    {
        var s = t.Span;
        for (int i = 0; i < s.Length; i++) s[i] = (float)((NextDouble() * 2 - 1) * bound);
    }

    public void Normal(Tensor t, float std)
    {
        var s = t.Span;
        for (int i = 0; i < s.Length; i++)
        {
            double u1 = 1 - NextDouble(), u2 = NextDouble();
            s[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
    }
}
