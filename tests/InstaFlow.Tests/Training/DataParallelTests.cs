// Data-parallel reflow and distillation under mpirun on the tiny SD-1.5 fixture: 2 ranks end with the parameters, EMA
// and AdamW moments of 1 rank with --grad-accum 2 (bit for bit) and of 1 rank on the whole batch (within float
// reduction order); a killed rank ends the job within 30 s, and 1 rank resumes its last checkpoint as the same run.
using System.Diagnostics;
using InstaFlow.IO;
using InstaFlow.Tests.Cli;
using InstaFlow.Training;
using Xunit.Abstractions;

namespace InstaFlow.Tests.Training;

public sealed class DataParallelTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("dataparallel-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    // Every run uses one thread per process: the kernels' results then depend only on the batch rows they see.
    private const int Steps = 4;

    /// <summary>32 triplets of the tiny teacher in two shards, and their prompts file.</summary>
    private (string Triplets, string Prompts) MakeTriplets()
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllLines(prompts, ["a photo of a cat", "a red apple", "two dogs on a beach", "an astronaut riding a horse"]);
        var triplets = Path.Combine(_tmp, "triplets");
        var (code, _, err) = CliRunner.Run("triplets", "--teacher", Tiny, "--prompts", prompts, "--count", "32", "--steps", "3", "--guidance", "3",
            "--seed", "11", "--shard-size", "16", "--batch", "8", "--out", triplets);
        Assert.True(code == 0, err);
        return (triplets, prompts);
    }

    private string[] ReflowArgs(string triplets, string prompts, string outDir, int steps, int checkpointEvery, params string[] extra) =>
        ["reflow", "--teacher", Tiny, "--triplets", triplets, "--prompts", prompts, "--out", outDir, "--steps", $"{steps}", "--batch", "8",
            "--lr", "1e-3", "--warmup", "2", "--ema", "0.9", "--cond-dropout", "0.25", "--seed", "5", "--threads", "1",
            "--checkpoint-every", $"{checkpointEvery}", .. extra];

    /// <summary>Every tensor of a run's last checkpoint: model.*, optimizer.* (AdamW moments) and ema.*.</summary>
    private static Dictionary<string, float[]> CheckpointTensors(string checkpointDir)
    {
        var state = Checkpoint.ReadState(checkpointDir);
        using var file = SafeTensors.Open(Path.Combine(checkpointDir, state.Weights));
        return file.Names.ToDictionary(n => n, n => { using var t = file.ReadF32(n); return t.ToArray(); });
    }

    /// <summary>The largest |a - b| over all tensors, and over model.* alone, with the step of each checkpoint checked.</summary>
    private static (float All, float Model) MaxDiff(string dirA, string dirB)
    {
        Assert.Equal(Checkpoint.ReadState(dirA).Step, Checkpoint.ReadState(dirB).Step);
        Assert.Equal(Checkpoint.ReadState(dirA).RngState, Checkpoint.ReadState(dirB).RngState);
        var a = CheckpointTensors(dirA);
        var b = CheckpointTensors(dirB);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        float all = 0, model = 0;
        foreach (var (name, x) in a)
        {
            float d = TestUtil.MaxAbsDiff(x, b[name]);
            all = float.IsNaN(d) ? float.NaN : Math.Max(all, d);
            if (name.StartsWith("model.", StringComparison.Ordinal)) model = Math.Max(model, d);
        }
        return (all, model);
    }

    private void AssertRan(CliProcessResult r, string what)
    {
        output.WriteLine($"{what}: exit {r.Code}, {r.Elapsed.TotalSeconds:F1} s");
        Assert.True(r.Code == 0, $"{what} failed with exit code {r.Code}:\n{r.Err}\n{r.Out}");
    }

    /// <summary>
    /// The three runs agree. 2 ranks against 1 rank with --grad-accum 2: the same two half-batch gradients, summed once
    /// (the all-reduce of two addends; a + b is exact-order-free in IEEE arithmetic, as the accumulation's g0 + g1), so
    /// the checkpoints are identical. Against 1 rank on the whole batch of 8: the weight gradients sum the 8 samples in
    /// another order (two sums of 4, then their sum), which moves each gradient by a few float32 ulps; AdamW divides by
    /// sqrt(v), so for a parameter whose gradient is near 0 such a change can move a step by up to 2 lr in the worst
    /// case, but in bulk the difference stays far below lr. Tolerance: 0.1 lr per step per parameter, i.e. Steps * 1e-4,
    /// against parameter changes of order lr * Steps = 4e-3.
    /// </summary>
    private void AssertSameRun(string twoRanks, string accum, string whole)
    {
        var (exactAll, _) = MaxDiff(twoRanks, accum);
        var (wholeAll, wholeModel) = MaxDiff(twoRanks, whole);
        output.WriteLine($"max |2 ranks - 1 rank --grad-accum 2| = {exactAll:G3}; max |2 ranks - 1 rank whole batch| = {wholeAll:G3} (parameters {wholeModel:G3})");
        Assert.True(exactAll == 0f, $"2 ranks and 1 rank with --grad-accum 2 differ by {exactAll} (expected bit-identical checkpoints)");
        Assert.True(wholeModel <= Steps * 1e-4f, $"2 ranks and 1 rank on the whole batch differ by {wholeModel} in the parameters (tolerance {Steps * 1e-4f})");
    }

    [Fact]
    public void Reflow_TwoRanks_EqualOneRankWithGradAccumAndWithWholeBatch()
    {
        var (triplets, prompts) = MakeTriplets();
        string mpi = Path.Combine(_tmp, "mpi2"), accum = Path.Combine(_tmp, "accum2"), whole = Path.Combine(_tmp, "whole");
        AssertRan(MpiRun.Run(2, ReflowArgs(triplets, prompts, mpi, Steps, 0)), "reflow, mpirun -np 2");
        AssertRan(MpiRun.Run(0, ReflowArgs(triplets, prompts, accum, Steps, 0, "--grad-accum", "2")), "reflow, 1 rank, --grad-accum 2");
        AssertRan(MpiRun.Run(0, ReflowArgs(triplets, prompts, whole, Steps, 0)), "reflow, 1 rank");
        AssertSameRun(Path.Combine(mpi, "checkpoints"), Path.Combine(accum, "checkpoints"), Path.Combine(whole, "checkpoints"));
        // only rank 0 logs, so the log has one line per logged step
        Assert.Single(File.ReadAllLines(Path.Combine(mpi, "train_log.jsonl")));
        Assert.True(File.Exists(Path.Combine(mpi, "unet", "diffusion_pytorch_model.safetensors")));
    }

    [Fact]
    public void Distill_TwoRanks_EqualOneRankWithGradAccumAndWithWholeBatch()
    {
        // four captions, and 16 pairs from the tiny teacher's 2-step ODE conditioned on them
        var data = Path.Combine(_tmp, "data");
        Directory.CreateDirectory(data);
        File.WriteAllLines(Path.Combine(data, "captions.jsonl"), new[] { "red apple", "blue car", "green tree", "yellow sun" }.Select(c =>
            $"{{\"file\":\"x.png\",\"caption\":\"{c}\",\"extra_captions\":[],\"category\":\"c\",\"subcategory\":\"s\",\"split\":\"train\"}}"));
        var pairs = Path.Combine(_tmp, "pairs");
        var (code, _, err) = CliRunner.Run("train", "pairs", "--data", data, "--model", Tiny, "--out", pairs, "--count", "16", "--steps", "2",
            "--guidance", "1", "--batch", "8", "--shard", "8", "--seed", "3");
        Assert.True(code == 0, err);
        string[] Args(string outDir, params string[] extra) =>
            ["train", "distill", "--data", data, "--model", Tiny, "--pairs", pairs, "--out", outDir, "--steps", $"{Steps}", "--batch", "8",
                "--lr", "1e-3", "--ema", "0.9", "--seed", "7", "--threads", "1", .. extra];
        string mpi = Path.Combine(_tmp, "mpi2"), accum = Path.Combine(_tmp, "accum2"), whole = Path.Combine(_tmp, "whole");
        AssertRan(MpiRun.Run(2, Args(mpi)), "distill, mpirun -np 2");
        AssertRan(MpiRun.Run(0, Args(accum, "--grad-accum", "2")), "distill, 1 rank, --grad-accum 2");
        AssertRan(MpiRun.Run(0, Args(whole)), "distill, 1 rank");
        AssertSameRun(Path.Combine(mpi, "checkpoints"), Path.Combine(accum, "checkpoints"), Path.Combine(whole, "checkpoints"));
        Assert.Contains("\"ranks\": 2", File.ReadAllText(Path.Combine(mpi, "result.json")));
    }

    [Fact]
    public void KilledRank_EndsTheJobWithin30Seconds_AndOneRankResumesTheSameRun()
    {
        var (triplets, prompts) = MakeTriplets();
        string mpi = Path.Combine(_tmp, "killed"), checkpoints = Path.Combine(mpi, "checkpoints");
        // far more steps than the test waits for: the job is killed long before its end
        var job = MpiRun.Start(2, ReflowArgs(triplets, prompts, mpi, 100_000, 3));
        var waited = Stopwatch.StartNew();
        while (!(Checkpoint.Exists(checkpoints) && Checkpoint.ReadState(checkpoints).Step >= 3) && !job.HasExited && waited.Elapsed < TimeSpan.FromMinutes(3))
            Thread.Sleep(100);
        // (the message reads stderr to its end, so it is built only when the job has ended)
        if (job.HasExited) Assert.Fail($"the job ended before it was killed: {job.StandardError.ReadToEnd()}");
        var pid = MpiRun.RankPid(job, 1);
        Assert.True(pid != null, "rank 1's process was not found among mpirun's children");
        Process.GetProcessById(pid!.Value).Kill();
        var end = MpiRun.Wait(job, TimeSpan.FromSeconds(60));
        output.WriteLine($"rank 1 killed: mpirun exited with {end.Code} after {end.Elapsed.TotalSeconds:F1} s; its stderr ends with:\n{string.Join('\n', end.Err.Split('\n').TakeLast(8))}");
        Assert.True(end.Elapsed < TimeSpan.FromSeconds(30), $"the job took {end.Elapsed.TotalSeconds:F1} s to end after a rank died");
        Assert.NotEqual(0, end.Code);
        Assert.Contains("rank 1", end.Err);

        // 1 rank resumes the last checkpoint 2 steps further; a run that never stopped, on 1 rank with the same
        // pieces (--grad-accum 2), reaches the same checkpoint bit for bit
        long at = Checkpoint.ReadState(checkpoints).Step;
        AssertRan(MpiRun.Run(0, ReflowArgs(triplets, prompts, mpi, (int)at + 2, 3, "--grad-accum", "2")), $"resume at step {at} on 1 rank");
        string straight = Path.Combine(_tmp, "straight");
        AssertRan(MpiRun.Run(0, ReflowArgs(triplets, prompts, straight, (int)at + 2, 3, "--grad-accum", "2")), "uninterrupted run on 1 rank");
        var (diff, _) = MaxDiff(checkpoints, Path.Combine(straight, "checkpoints"));
        Assert.True(diff == 0f, $"the resumed run differs from the uninterrupted one by {diff}");
    }
}
