// Reflow pair files: a PairGenerator's pairs [0, N) as shards pairs-<start>.safetensors (points [n, G, ...], the
// condition indices when conditional, metadata start/count/base seed/grid), written atomically and resumed, and read back.
using System.Globalization;
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Training;

public static class PairShards
{
    /// <summary>
    /// Writes pairs [0, total) as shards of shardSize under dir, skipping shards already there (each is written
    /// atomically, so an existing file is complete): an interrupted run resumes where it stopped.
    /// </summary>
    public static void Write(PairGenerator gen, string dir, long total, int shardSize, Action<long>? progress = null)
    {
        if (shardSize < 1) throw new InvalidInputException($"shard size must be positive, got {shardSize}");
        Directory.CreateDirectory(dir);
        for (long s = 0; s < total; s += shardSize)
        {
            long n = Math.Min(shardSize, total - s);
            string path = Path(dir, s);
            if (File.Exists(path))
            {
                using var f = SafeTensors.Open(path);
                CheckCompatible(gen, f, path);
            }
            else
            {
                using var scope = TensorScope.Begin();
                var tensors = new Dictionary<string, Tensor> { ["points"] = gen.Generate(s, n) };
                // condition indices below 2^24 are exact in float32, the only integer-free storage Save offers
                if (gen.Conditional) tensors["conditions"] = Tensor.FromArray(Enumerable.Range(0, (int)n).Select(i => (float)gen.ConditionIndex(s + i)).ToArray(), (int)n);
                SafeTensors.Save(path, tensors, metadata: Metadata(gen, s, n));
            }
            progress?.Invoke(s + n);
        }
    }

    private static Dictionary<string, string> Metadata(PairGenerator gen, long start, long count)
    {
        var m = new Dictionary<string, string>
        {
            ["start"] = start.ToString(CultureInfo.InvariantCulture),
            ["count"] = count.ToString(CultureInfo.InvariantCulture),
            ["base_seed"] = gen.BaseSeed.ToString(CultureInfo.InvariantCulture),
            ["grid"] = FormatGrid(gen.Grid),
        };
        if (gen.ConditionsDrawn is { } drawn) m["conditions_drawn"] = drawn;
        return m;
    }

    private static void CheckCompatible(PairGenerator gen, SafeTensorsFile f, string path)
    {
        f.Metadata.TryGetValue("base_seed", out var seed);
        f.Metadata.TryGetValue("grid", out var grid);
        if (seed != gen.BaseSeed.ToString(CultureInfo.InvariantCulture) || grid != FormatGrid(gen.Grid))
            throw new InvalidInputException($"{path}: shard was made with base seed {seed} and grid [{grid}], not {gen.BaseSeed} and [{FormatGrid(gen.Grid)}]; use an empty directory");
        // shards written before the rule was recorded drew uniformly
        var drawn = f.Metadata.TryGetValue("conditions_drawn", out var d) ? d : PairConditions.Uniform;
        if (gen.Conditional && drawn != gen.ConditionsDrawn)
            throw new InvalidInputException($"{path}: shard's conditions were drawn '{drawn}', this run draws them '{gen.ConditionsDrawn}'; use an empty directory or the same rule");
    }

    public static string Path(string dir, long start) => System.IO.Path.Combine(dir, $"pairs-{start:D10}.safetensors");

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
