// Stage-1 data for InstaFlow: (noise, teacher latents, prompt) triplets from the SD teacher, in fixed-size shard
// files that any process can produce independently, in any order, and resume after a kill.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training.Triplets;

public sealed record TripletSettings
{
    public required long Count { get; init; }
    public int Steps { get; init; } = 25;
    public float Guidance { get; init; } = 7.5f;
    public ulong BaseSeed { get; init; }
    /// <summary>Triplets per shard file (the last file may hold fewer).</summary>
    public int ShardSize { get; init; } = 1000;
    /// <summary>Triplets per teacher call; part of the parameters because batching may change float rounding.</summary>
    public int Batch { get; init; } = 1;
    public string NegativePrompt { get; init; } = "";
    public int? Width { get; init; }
    public int? Height { get; init; }
}

public sealed record TripletRunReport(IReadOnlyList<int> Generated, IReadOnlyList<int> Skipped, string ManifestPath);

/// <summary>
/// Triplet k (0 &lt;= k &lt; Count) uses noise torch.manual_seed(NoiseSeed(BASE, k)); torch.randn(1, 4, h, w) and
/// prompt PromptIndex(k, P) = k mod P. Shard file s holds triplets [s*K, min((s+1)*K, Count)); process i of n
/// makes the files with s mod n == i. So a triplet's bytes depend only on the parameters, never on the layout.
/// </summary>
public sealed class TripletGenerator(StableDiffusionPipeline teacher, IReadOnlyList<string> prompts, string promptsSha256, TripletSettings settings)
{
    /// <summary>
    /// BASE * 1000003 + k (mod 2^64). PyTorch's CPU generator keeps only the low 32 bits, so for one BASE the
    /// first 2^32 triplets get distinct noise; BASE and BASE + 1 overlap after 1000003 triplets.
    /// </summary>
    public static ulong NoiseSeed(ulong baseSeed, long k) => unchecked(baseSeed * 1_000_003UL + (ulong)k);

    public static int PromptIndex(long k, int promptCount) => (int)(k % promptCount);

    public static int ShardFileCount(long count, int shardSize) => checked((int)((count + shardSize - 1) / shardSize));

    /// <summary>The shard files process index/of makes: s mod of == index (round robin, so the work is balanced).</summary>
    public static IEnumerable<int> ShardsOf(int shardFiles, int index, int of) => Enumerable.Range(0, shardFiles).Where(s => s % of == index);

    public static string ShardFileName(int s) => $"shard-{s:D6}.safetensors";

    public TripletSettings Settings { get; } = Validate(settings, prompts);

    // The teacher is named by its weights, not its folder: a renamed or moved copy resumes, other weights do not.
    private readonly Lazy<string> _modelSha256 = new(teacher.Model.WeightsSha256);

    private static TripletSettings Validate(TripletSettings s, IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0) throw new InvalidInputException("no prompts");
        if (s.Count < 1) throw new InvalidInputException($"count must be at least 1, got {s.Count}");
        if (s.ShardSize < 1) throw new InvalidInputException($"shard size must be at least 1, got {s.ShardSize}");
        if (s.Batch < 1 || s.Batch > s.ShardSize) throw new InvalidInputException($"batch must be between 1 and the shard size {s.ShardSize}, got {s.Batch}");
        return s;
    }

    public SortedDictionary<string, string> Parameters()
    {
        var inv = CultureInfo.InvariantCulture;
        var json = new JsonSerializerOptions { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
        int width = Settings.Width ?? teacher.DefaultWidth, height = Settings.Height ?? teacher.DefaultHeight;
        return new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["count"] = Settings.Count.ToString(inv),
            ["steps"] = Settings.Steps.ToString(inv),
            ["guidance"] = Settings.Guidance.ToString("R", inv),
            ["base_seed"] = Settings.BaseSeed.ToString(inv),
            ["shard_size"] = Settings.ShardSize.ToString(inv),
            ["batch"] = Settings.Batch.ToString(inv),
            ["negative_prompt"] = Settings.NegativePrompt,
            ["width"] = width.ToString(inv),
            ["height"] = height.ToString(inv),
            ["model_sha256"] = _modelSha256.Value,
            ["scheduler"] = JsonSerializer.Serialize(teacher.Scheduler.Config, json),
            ["prompts_sha256"] = promptsSha256,
            ["prompt_count"] = prompts.Count.ToString(inv),
            ["noise_seed"] = "torch.manual_seed((BASE * 1000003 + k) mod 2^64); torch.randn(1, C, h, w)",
            ["prompt_index"] = "k mod prompt_count",
            ["layout"] = "shard s = triplets [s*shard_size, (s+1)*shard_size); process i/n makes s mod n == i",
        };
    }

    /// <summary>
    /// Makes the shard files of process index/of in outDir. Complete files of this run are verified and skipped
    /// (sha256 against the manifest, or the run hash stored in the file when a kill came before the manifest update);
    /// anything else is regenerated. The manifest is rewritten after every shard. Progress counts this process's
    /// triplets, skipped ones included, after every teacher call.
    /// </summary>
    public TripletRunReport Run(string outDir, int index, int of, Action<string>? log = null, IProgress<JobProgress>? progress = null)
    {
        if (of < 1 || index < 0 || index >= of) throw new InvalidInputException($"shard {index}/{of} is not usable: need 0 <= i < n");
        Directory.CreateDirectory(outDir);
        var parameters = Parameters();
        string runHash = TripletManifest.ParametersHash(parameters);
        var manifestPath = Path.Combine(outDir, TripletManifest.FileName(index, of));
        var manifest = new TripletManifest { Parameters = parameters, ShardIndex = index, ShardCount = of };
        if (File.Exists(manifestPath))
        {
            var old = TripletManifest.Load(manifestPath);
            if (TripletManifest.FirstDifference(old.Parameters, parameters) is string diff)
                throw new InvalidInputException($"{manifestPath}: this folder holds triplets made with other parameters ({diff}); use another output folder");
            manifest.Shards.AddRange(old.Shards);
        }

        var generated = new List<int>();
        var skipped = new List<int>();
        int files = ShardFileCount(Settings.Count, Settings.ShardSize);
        long total = ShardsOf(files, index, of).Sum(s => (long)Entry(s, "").Count), done = 0;
        foreach (int s in ShardsOf(files, index, of))
        {
            var path = Path.Combine(outDir, ShardFileName(s));
            var listed = manifest.Shards.FirstOrDefault(e => e.Index == s);
            if (IsComplete(path, s, runHash, listed, out var sha))
            {
                if (listed == null) manifest.Shards.Add(Entry(s, sha!));
                skipped.Add(s);
                log?.Invoke($"shard {s}: complete, skipped");
                done += Entry(s, "").Count;
                progress?.Report(new JobProgress(done, total, $"shard {s} skipped"));
                continue;
            }
            manifest.Shards.RemoveAll(e => e.Index == s);
            long before = done;
            Generate(path, s, runHash, log, n => progress?.Report(new JobProgress(before + n, total, $"shard {s}")));
            done += Entry(s, "").Count;
            manifest.Shards.Add(Entry(s, TripletManifest.FileSha256(path)));
            manifest.Save(manifestPath);
            generated.Add(s);
        }
        manifest.Save(manifestPath);
        return new TripletRunReport(generated, skipped, manifestPath);
    }

    private ShardEntry Entry(int s, string sha)
    {
        long first = (long)s * Settings.ShardSize;
        return new ShardEntry(s, ShardFileName(s), first, (int)Math.Min(Settings.ShardSize, Settings.Count - first), sha);
    }

    private bool IsComplete(string path, int s, string runHash, ShardEntry? listed, out string? sha)
    {
        sha = null;
        if (!File.Exists(path)) return false;
        string? fileRun, fileShard;
        try
        {
            using var f = SafeTensors.Open(path);
            fileRun = f.Metadata.GetValueOrDefault("run_sha256");
            fileShard = f.Metadata.GetValueOrDefault("shard");
        }
        catch (InvalidInputException)
        {
            return false; // unreadable: made again
        }
        // Never overwrite another run's data: a different hash means the folder was reused with new parameters.
        if (fileRun != runHash) throw new InvalidInputException($"{path} was made by a run with other parameters; use another output folder");
        if (fileShard != s.ToString(CultureInfo.InvariantCulture)) return false;
        sha = TripletManifest.FileSha256(path);
        return listed == null || listed.Sha256 == sha;
    }

    private void Generate(string path, int s, string runHash, Action<string>? log, Action<int> madeInShard)
    {
        long first = (long)s * Settings.ShardSize;
        int count = (int)Math.Min(Settings.ShardSize, Settings.Count - first);
        using var scope = TensorScope.Begin();
        float[]? noiseAll = null, latentsAll = null;
        var promptIdx = new long[count];
        int[]? sampleShape = null;
        teacher.DecodeImages = false;
        for (int start = 0; start < count; start += Settings.Batch)
        {
            using var batchScope = TensorScope.Begin();
            int b = Math.Min(Settings.Batch, count - start);
            var req = BatchRequest(first + start, b, promptIdx.AsSpan(start, b), out var noise);
            var res = teacher.Generate(req);
            sampleShape ??= noise.ShapeArray()[1..];
            int per = (int)(noise.Numel / b);
            noiseAll ??= new float[(long)count * per];
            latentsAll ??= new float[(long)count * per];
            noise.Span.CopyTo(noiseAll.AsSpan(start * per));
            res.FinalLatents.Span.CopyTo(latentsAll.AsSpan(start * per));
            res.FinalLatents.Dispose();
            madeInShard(start + b);
        }
        var shape = new[] { count }.Concat(sampleShape!).ToArray();
        var inv = CultureInfo.InvariantCulture;
        SafeTensors.Save(path, new[] { ("noise", Tensor.FromArray(noiseAll!, shape)), ("final_latents", Tensor.FromArray(latentsAll!, shape)) },
            metadata: new Dictionary<string, string>
            {
                ["format"] = "pt", ["run_sha256"] = runHash, ["shard"] = s.ToString(inv), ["first"] = first.ToString(inv), ["count"] = count.ToString(inv),
            },
            int64: new[] { ("prompt_index", promptIdx) });
    }

    /// <summary>The teacher request for triplets first..first+b-1: per-triplet seeded noise, prompts k mod P.</summary>
    private GenerationRequest BatchRequest(long first, int b, Span<long> promptIdx, out Tensor noise)
    {
        int f = teacher.Model.Vae.Config.ScaleFactor, c = teacher.Model.Unet.Config.InChannels;
        int h = (Settings.Height ?? teacher.DefaultHeight) / f, w = (Settings.Width ?? teacher.DefaultWidth) / f;
        var parts = new Tensor[b];
        var batchPrompts = new string[b];
        for (int j = 0; j < b; j++)
        {
            long k = first + j;
            parts[j] = new TorchGenerator(NoiseSeed(Settings.BaseSeed, k)).Randn(1, c, h, w);
            promptIdx[j] = PromptIndex(k, prompts.Count);
            batchPrompts[j] = prompts[(int)promptIdx[j]];
        }
        noise = Ops.Concat(parts, 0);
        return new GenerationRequest
        {
            Prompts = batchPrompts, NegativePrompts = Enumerable.Repeat(Settings.NegativePrompt, b).ToArray(),
            Steps = Settings.Steps, Guidance = Settings.Guidance, Width = Settings.Width, Height = Settings.Height, InitLatents = noise,
        };
    }

    /// <summary>
    /// Checks every manifest in outDir: parameters agree, each listed file exists with its sha256, and together the
    /// manifests cover every shard file. Returns one line per problem (empty when the data set is complete).
    /// </summary>
    public static IReadOnlyList<string> Verify(string outDir)
    {
        var problems = new List<string>();
        if (!Directory.Exists(outDir)) return new[] { $"{outDir}: folder not found" };
        var paths = Directory.GetFiles(outDir, "manifest*.json").Order(StringComparer.Ordinal).ToArray();
        if (paths.Length == 0) return new[] { $"{outDir}: no manifest.json or manifest-I-of-N.json" };
        var manifests = new List<(string Path, TripletManifest M)>();
        foreach (var p in paths)
        {
            try { manifests.Add((p, TripletManifest.Load(p))); }
            catch (InvalidInputException e) { problems.Add(e.Message); }
        }
        if (manifests.Count == 0) return problems;
        var reference = manifests[0];
        foreach (var (p, m) in manifests.Skip(1))
            if (TripletManifest.FirstDifference(reference.M.Parameters, m.Parameters) is string diff)
                problems.Add($"{Path.GetFileName(p)}: parameters differ from {Path.GetFileName(reference.Path)} ({diff})");

        var covered = new HashSet<int>();
        foreach (var (p, m) in manifests)
            foreach (var e in m.Shards)
            {
                var file = Path.Combine(outDir, e.File);
                if (!File.Exists(file)) { problems.Add($"{e.File}: missing (listed in {Path.GetFileName(p)})"); continue; }
                var sha = TripletManifest.FileSha256(file);
                if (sha != e.Sha256) problems.Add($"{e.File}: sha256 {sha} does not match {Path.GetFileName(p)} ({e.Sha256})");
                else covered.Add(e.Index);
            }
        var prm = reference.M.Parameters;
        if (long.TryParse(prm.GetValueOrDefault("count"), CultureInfo.InvariantCulture, out long count)
            && int.TryParse(prm.GetValueOrDefault("shard_size"), CultureInfo.InvariantCulture, out int size) && size > 0)
        {
            var missing = Enumerable.Range(0, ShardFileCount(count, size)).Where(s => !covered.Contains(s)).ToArray();
            if (missing.Length > 0)
                problems.Add($"{missing.Length} shard file(s) not verified by any manifest: {string.Join(", ", missing.Take(20).Select(ShardFileName))}{(missing.Length > 20 ? ", ..." : "")}");
        }
        return problems;
    }
}
