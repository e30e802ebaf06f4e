// Reflow couplings: (Z0, Z1) pairs from solving a trained flow's ODE from fresh noise. Pair k's noise comes from a
// generator seeded by hash(base seed, k), so pairs can be made in any order, in shards, on any machine, and resumed.
using System.Globalization;
using InstaFlow.IO;
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
/// </summary>
public sealed record PairConditions(int Count, Func<int[], Tensor> Lookup, float Guidance = 0f, Tensor? NullCond = null);

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
    public int ConditionIndex(long k) => _conditions == null ? throw new InvalidOperationException("this pair generator is unconditional")
        : (int)(PairSeed(~BaseSeed, k) % (ulong)_conditions.Count);

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

    /// <summary>
    /// Writes pairs [0, total) as shards of shardSize under dir, skipping shards already there (each is written
    /// atomically, so an existing file is complete): an interrupted run resumes where it stopped.
    /// </summary>
    public void WriteShards(string dir, long total, int shardSize, Action<long>? progress = null)
    {
        if (shardSize < 1) throw new InvalidInputException($"shard size must be positive, got {shardSize}");
        Directory.CreateDirectory(dir);
        for (long s = 0; s < total; s += shardSize)
        {
            long n = Math.Min(shardSize, total - s);
            string path = ShardPath(dir, s);
            if (File.Exists(path))
            {
                using var f = SafeTensors.Open(path);
                CheckCompatible(f, path);
            }
            else
            {
                using var scope = TensorScope.Begin();
                var tensors = new Dictionary<string, Tensor> { ["points"] = Generate(s, n) };
                // condition indices below 2^24 are exact in float32, the only integer-free storage Save offers
                if (_conditions != null) tensors["conditions"] = Tensor.FromArray(Enumerable.Range(0, (int)n).Select(i => (float)ConditionIndex(s + i)).ToArray(), (int)n);
                SafeTensors.Save(path, tensors, metadata: Metadata(s, n));
            }
            progress?.Invoke(s + n);
        }
    }

    private Dictionary<string, string> Metadata(long start, long count) => new()
    {
        ["start"] = start.ToString(CultureInfo.InvariantCulture),
        ["count"] = count.ToString(CultureInfo.InvariantCulture),
        ["base_seed"] = BaseSeed.ToString(CultureInfo.InvariantCulture),
        ["grid"] = FormatGrid(Grid),
    };

    private void CheckCompatible(SafeTensorsFile f, string path)
    {
        f.Metadata.TryGetValue("base_seed", out var seed);
        f.Metadata.TryGetValue("grid", out var grid);
        if (seed != BaseSeed.ToString(CultureInfo.InvariantCulture) || grid != FormatGrid(Grid))
            throw new InvalidInputException($"{path}: shard was made with base seed {seed} and grid [{grid}], not {BaseSeed} and [{FormatGrid(Grid)}]; use an empty directory");
    }

    public static string ShardPath(string dir, long start) => Path.Combine(dir, $"pairs-{start:D10}.safetensors");

    private static string FormatGrid(float[] grid) => string.Join(",", grid.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));

    /// <summary>Loads every shard under dir into one persistent pair set; the shards must cover [0, N) without gaps.</summary>
    public static PairSet Load(string dir)
    {
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir, "pairs-*.safetensors").OrderBy(p => p, StringComparer.Ordinal).ToList() : [];
        if (files.Count == 0) throw new FileNotFoundException($"no pair shards (pairs-*.safetensors) in {dir}");
        using var scope = TensorScope.Begin();
        var parts = new List<Tensor>();
        var conditions = new List<int>();
        bool conditional = false;
        long next = 0;
        string? grid = null;
        foreach (var path in files)
        {
            using var f = SafeTensors.Open(path);
            long start = long.Parse(f.Metadata["start"], CultureInfo.InvariantCulture);
            if (start != next) throw new InvalidInputException($"{path}: shard starts at pair {start} but the shards before it end at {next}; a shard is missing");
            if (grid != null && f.Metadata["grid"] != grid) throw new InvalidInputException($"{path}: grid [{f.Metadata["grid"]}] differs from the other shards' [{grid}]");
            grid = f.Metadata["grid"];
            var t = f.ReadF32("points");
            parts.Add(t.Clone());
            t.Dispose();
            bool hasCond = f.Names.Contains("conditions");
            if (parts.Count > 1 && hasCond != conditional) throw new InvalidInputException($"{path}: some shards store condition indices and some do not");
            conditional = hasCond;
            if (hasCond)
            {
                var c = f.ReadF32("conditions");
                conditions.AddRange(c.ToArray().Select(v => (int)v));
                c.Dispose();
            }
            next += parts[^1].Dim(0);
        }
        var shape = parts[0].ShapeArray();
        shape[0] = checked((int)next);
        var all = Tensor.EmptyPersistent(shape);
        all.CopyFrom(Ops.Concat(parts.ToArray(), 0));
        return new PairSet(all, grid!.Split(',').Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray(), conditional ? conditions.ToArray() : null);
    }
}
