// `instaflow triplets`: InstaFlow stage-1 data (noise, teacher latents, prompt index) in sharded safetensors files,
// one process per shard (--shard i/n), resumable, with --verify for the whole folder.
using System.CommandLine;
using System.Globalization;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training.Triplets;

namespace InstaFlow.Cli;

public static class TripletsCommand
{
    /// <summary>The most triplets one data set (one --seed) may have.</summary>
    public const long MaxCount = 1L << 32;

    public const string ShardHelp =
        "this process's part of the job, i/n with 0 <= i < n: it makes the shard files s with s mod n == i. " +
        "Run one process per part, on any machines and in any order, all writing to (or later copied into) one --out folder: " +
        "a Slurm array (`sbatch --array=0-15`) runs `--shard ${SLURM_ARRAY_TASK_ID}/16`; a Kubernetes indexed Job " +
        "(completionMode: Indexed, completions: 16) runs `--shard ${JOB_COMPLETION_INDEX}/16`. " +
        "Each part writes manifest-i-of-n.json (manifest.json for 0/1); re-running a part skips its verified shards";

    public static Command Create()
    {
        var teacher = new ModelOptions("--teacher", what: "the SD-1.5-family teacher");
        var promptsOpt = new Option<string?>("--prompts") { Description = "UTF-8 text file, one prompt per line (no blank lines); triplet k uses line k mod (number of lines)" };
        var count = new Option<long>("--count") { Description = "total number of triplets in the data set (all shards)", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { Description = "teacher sampler steps", DefaultValueFactory = _ => 25 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance scale of the teacher", DefaultValueFactory = _ => 7.5f };
        var seed = new Option<ulong>("--seed") { Description = "BASE seed: triplet k's noise is torch.manual_seed(BASE*1000003 + k); torch.randn(1,4,h,w)", DefaultValueFactory = _ => 0UL };
        var shard = new Option<string>("--shard") { Description = ShardHelp, DefaultValueFactory = _ => "0/1" };
        var shardSize = new Option<int>("--shard-size") { Description = "triplets per shard file: file s holds triplets s*K .. s*K+K-1", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch") { Description = "triplets per teacher call (recorded in the manifest)", DefaultValueFactory = _ => 1 };
        var negative = new Option<string>("--negative-prompt") { Description = "negative prompt for guidance", DefaultValueFactory = _ => "" };
        var width = new Option<int?>("--width") { Description = "image width in pixels (multiple of 8); latents are width/8" };
        var height = new Option<int?>("--height") { Description = "image height in pixels (multiple of 8)" };
        var variant = new Option<string?>("--variant") { Description = "weights variant, e.g. fp16" };
        var threads = new Option<int?>("--threads") { Description = "worker threads (default: all cores)" };
        var outDir = new Option<string>("--out") { Description = "output folder for shard-NNNNNN.safetensors and the manifests", Required = true };
        var verify = new Option<bool>("--verify") { Description = "only check every shard file in --out against the manifests and report problems (exit 1 if any)" };
        var sched = new SchedulerOptions();

        var cmd = new Command("triplets",
            "Generate InstaFlow stage-1 triplets (noise, teacher final latents, prompt index) with the SD teacher, sharded for many machines. " +
            "Each shard file holds noise [K,4,h,w], final_latents [K,4,h,w] and prompt_index I64 [K]; the manifest records every parameter, " +
            "the prompts file's sha256 and each shard's sha256. --shard: " + ShardHelp + ".");
        teacher.AddTo(cmd);
        foreach (var o in new Option[] { promptsOpt, count, steps, guidance, seed, shard, shardSize, batch, negative, width, height, variant, threads, outDir, verify }) cmd.Options.Add(o);
        sched.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var dir = r.GetValue(outDir)!;
            if (r.GetValue(verify)) return Verify(dir);

            var (index, of) = ParseShard(r.GetValue(shard)!);
            if (r.GetValue(teacher.Model) == null) throw new UserException("--teacher is required (the SD model folder or single file)");
            var source = teacher.Source(r, r.GetValue(variant));
            var teacherDir = source.ConfigDir ?? source.Path;
            var promptsPath = r.GetValue(promptsOpt) ?? throw new UserException("--prompts is required (one prompt per line)");
            if (r.GetValue(count) < 1) throw new UserException("--count is required and must be at least 1");
            // Noise is distinct only for the first 2^32 triplets of one seed (PyTorch keeps 32 bits of it), and larger
            // counts overflowed the shard arithmetic.
            if (r.GetValue(count) > MaxCount) throw new UserException($"--count {r.GetValue(count)} is more than {MaxCount} triplets (2^32), the most one --seed gives distinct noise for; split the set over several --seed values");
            ImageOptions.CheckSize(r.GetValue(width), r.GetValue(height));
            if (r.GetValue(threads) is int th)
            {
                if (th < 1 || th > 1024) throw new UserException($"--threads must be between 1 and 1024, got {th}");
                Par.Threads = th;
            }
            var (prompts, sha) = PromptsFile.Read(promptsPath);
            var scheduler = sched.Resolve(r, teacherDir);

            using var components = SdComponents.Open(source);
            var pipe = new StableDiffusionPipeline(components, scheduler);
            var settings = new TripletSettings
            {
                Count = r.GetValue(count), Steps = r.GetValue(steps), Guidance = r.GetValue(guidance), BaseSeed = r.GetValue(seed),
                ShardSize = r.GetValue(shardSize), Batch = r.GetValue(batch), NegativePrompt = r.GetValue(negative)!,
                Width = r.GetValue(width), Height = r.GetValue(height),
            };
            var gen = new TripletGenerator(pipe, prompts, sha, settings);
            var report = ProgressDisplay.Run($"triplets {index}/{of}", p => gen.Run(dir, index, of, p.Log, p));
            CliIO.Out.WriteLine($"shard {index}/{of}: {report.Generated.Count} shard file(s) generated, {report.Skipped.Count} already complete; manifest {report.ManifestPath}");
            return 0;
        });
        return cmd;
    }

    private static int Verify(string dir)
    {
        var problems = TripletGenerator.Verify(dir);
        foreach (var p in problems) CliIO.Out.WriteLine($"problem: {p}");
        if (problems.Count == 0) CliIO.Out.WriteLine($"ok: every shard file in {dir} matches its manifest and all shards are present");
        return problems.Count == 0 ? 0 : 1;
    }

    private static (int Index, int Of) ParseShard(string s)
    {
        var parts = s.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && i < n)
            return (i, n);
        throw new UserException($"--shard {s} is not usable: expected i/n with 0 <= i < n, e.g. 0/4 (Slurm: ${{SLURM_ARRAY_TASK_ID}}/N)");
    }
}
