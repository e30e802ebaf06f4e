// Reflow couplings: (Z0, Z1) pairs from solving a trained flow's ODE from fresh noise. Pair k's noise comes from a
// generator seeded by hash(base seed, k), so pairs can be made in any order, in shards, on any machine, and resumed
// (their files: Training/PairShards.cs).
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Flow;

/// <summary>
/// Stored couplings: Points [N, G, ...sample] holds each pair's states at the G grid times (Grid[0] = 0, Grid[^1] = 1);
/// Conditions, when the teacher was conditional, holds each pair's condition index (e.g. its caption).
/// </summary>
public sealed class PairSet(Tensor points, float[] grid, int[]? conditions = null)
{
    public Tensor Points { get; } = points;
    public float[] Grid { get; } = grid;
    public int[]? Conditions { get; } = conditions;
    public int Count => Points.Dim(0);
    public int[] SampleShape => Points.ShapeArray()[2..];

    /// <summary>The states of the given pairs, one [B, ...sample] tensor per grid time.</summary>
    public Tensor[] Gather(ReadOnlySpan<int> indices)
    {
        int g = Grid.Length;
        var flat = Points.Reshape([Count * g, .. SampleShape]);
        var r = new Tensor[g];
        for (int j = 0; j < g; j++)
        {
            r[j] = Tensor.Empty([indices.Length, .. SampleShape]);
            for (int b = 0; b < indices.Length; b++) Rows.Copy(flat, (long)indices[b] * g + j, r[j], b);
        }
        return r;
    }
}

/// <summary>
/// Training couplings drawn uniformly (with replacement) from a stored pair set. With conditions (condition indices to
/// a condition batch) each pair comes with the condition its teacher solved the ODE under.
/// </summary>
public sealed class StoredPairs : IPairSource
{
    private readonly PairSet _set;
    private readonly Func<int[], Tensor>? _conditions;

    public StoredPairs(PairSet set, Func<int[], Tensor>? conditions = null)
    {
        if (conditions != null && set.Conditions == null) throw new InvalidInputException("the pair set stores no condition indices, so it cannot train a conditional model");
        _set = set; _conditions = conditions;
    }

    public PairBatch Next(TorchGenerator rng, int batch)
    {
        var idx = new int[batch];
        for (int b = 0; b < batch; b++) idx[b] = (int)(rng.NextUInt64() % (ulong)_set.Count);
        return new PairBatch(_set.Gather(idx), _conditions?.Invoke(idx.Select(i => _set.Conditions![i]).ToArray()));
    }
}

/// <summary>
/// Conditions for pair generation: pair k solves the ODE under condition index ConditionIndex(k) in [0, Count)
/// (drawn from its own seed), Lookup turns indices into a condition batch, and a guidance scale that
/// <see cref="Flow.Guidance.IsOn"/> accepts (&gt; 1) guides against NullCond (one row), exactly as generation does.
/// Choose, when given, maps a pair's 64-bit condition seed to its index (a weighted draw; default: seed mod Count), and
/// Drawn names that rule in the shards' metadata so a resumed run cannot mix two rules.
/// </summary>
public sealed record PairConditions(int Count, Func<int[], Tensor> Lookup, float Guidance = 0f, Tensor? NullCond = null,
    Func<ulong, int>? Choose = null, string Drawn = PairConditions.Uniform)
{
    public const string Uniform = "uniform";
}

/// <summary>Online reflow / distillation: the teacher solves its ODE on fresh noise from the training generator.</summary>
public sealed class TeacherPairs(FlowModel teacher, OdeSampler sampler, int[] sampleShape, float[]? grid = null) : IPairSource
{
    private readonly float[] _grid = grid ?? [0f, 1f];

    public PairBatch Next(TorchGenerator rng, int batch) =>
        new(PairGenerator.Solve(teacher.Field(), sampler, rng.Randn([batch, .. sampleShape]), _grid), null);
}

public sealed class PairGenerator
{
    private readonly FlowModel _teacher;
    private readonly OdeSampler _sampler;
    private readonly int[] _sampleShape;
    private readonly int _batchSize;

    private readonly PairConditions? _conditions;

    public PairGenerator(FlowModel teacher, OdeSampler sampler, int[] sampleShape, ulong baseSeed, float[]? grid = null, int batchSize = 256, PairConditions? conditions = null)
    {
        if (batchSize < 1) throw new InvalidInputException($"pair generation batch size must be positive, got {batchSize}");
        if (conditions is { Count: < 1 }) throw new ArgumentException($"pair conditions need at least one condition, got {conditions.Count}");
        if (conditions != null && Flow.Guidance.IsOn(conditions.Guidance) && conditions.NullCond == null) throw new ArgumentException("guided pair generation needs a null condition");
        _teacher = teacher; _sampler = sampler; _sampleShape = sampleShape; _batchSize = batchSize; _conditions = conditions;
        BaseSeed = baseSeed;
        Grid = grid ?? [0f, 1f];
    }

    public ulong BaseSeed { get; }
    public float[] Grid { get; }

    /// <summary>SplitMix64 finalizer over (base seed, index): well-mixed, so neighbouring pairs get unrelated streams.</summary>
    public static ulong PairSeed(ulong baseSeed, long index)
    {
        ulong z = baseSeed ^ (0x9E3779B97F4A7C15UL * (ulong)(index + 1));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Pair k's condition index: from a stream separate from its noise (the complemented base seed).</summary>
    public int ConditionIndex(long k)
    {
        if (_conditions == null) throw new InvalidOperationException("this pair generator is unconditional");
        ulong seed = PairSeed(~BaseSeed, k);
        int i = _conditions.Choose is { } choose ? choose(seed) : (int)(seed % (ulong)_conditions.Count);
        if ((uint)i >= (uint)_conditions.Count) throw new InvalidOperationException($"condition rule '{_conditions.Drawn}' chose {i}, outside [0, {_conditions.Count})");
        return i;
    }

    /// <summary>The rule that draws the condition indices (<see cref="PairConditions.Drawn"/>; null when unconditional).</summary>
    public string? ConditionsDrawn => _conditions?.Drawn;

    /// <summary>States at each grid time of the ODE solution from x0 (x0 itself first).</summary>
    public static Tensor[] Solve(VelocityFn v, OdeSampler sampler, Tensor x0, float[] grid)
    {
        var r = new Tensor[grid.Length];
        r[0] = x0;
        for (int j = 1; j < grid.Length; j++) r[j] = sampler.Sample(v, r[j - 1], grid[j - 1], grid[j]).X;
        return r;
    }

    /// <summary>
    /// Pairs [start, start + count) as [count, G, ...sample]. The ODE is solved in batches aligned to multiples of the
    /// batch size in pair-index space, so every pair always shares its batch with the same neighbours: adaptive step
    /// sizes (chosen per batch) and therefore the results are the same however the range is split.
    /// </summary>
    public Tensor Generate(long start, long count)
    {
        int g = Grid.Length;
        var outT = Tensor.Empty([checked((int)count), g, .. _sampleShape]);
        var outFlat = outT.Reshape([(int)count * g, .. _sampleShape]);
        for (long b0 = start / _batchSize * _batchSize; b0 < start + count; b0 += _batchSize)
        {
            using var scope = TensorScope.Begin();
            var field = BatchField(b0);
            var noise = Tensor.Empty([_batchSize, .. _sampleShape]);
            long row = noise.Numel / _batchSize;
            for (int i = 0; i < _batchSize; i++)
                new TorchGenerator(PairSeed(BaseSeed, b0 + i)).FillNormal(noise.Span.Slice((int)(i * row), (int)row));
            var states = Solve(field, _sampler, noise, Grid);
            for (long k = Math.Max(b0, start); k < Math.Min(b0 + _batchSize, start + count); k++)
                for (int j = 0; j < g; j++) Rows.Copy(states[j], k - b0, outFlat, (k - start) * g + j);
        }
        return outT;
    }

    private VelocityFn BatchField(long b0)
    {
        if (_conditions == null) return _teacher.Field();
        var idx = new int[_batchSize];
        for (int i = 0; i < _batchSize; i++) idx[i] = ConditionIndex(b0 + i);
        // the same field as generation: conditional, or guided when the scale is above 1
        return _teacher.Field(_conditions.Lookup(idx), _conditions.Guidance, _conditions.NullCond);
    }

    /// <summary>True when pairs carry condition indices (ConditionIndex).</summary>
    public bool Conditional => _conditions != null;
}
