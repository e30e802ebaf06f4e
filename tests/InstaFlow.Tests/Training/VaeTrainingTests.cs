// `train vae`'s schedule, EMA and periodic evaluation on a tiny dataset: a run stopped and resumed with the new options
// ends bit-identical to one that was not, the export is the EMA weights, eval lines reach the log, a checkpoint
// written without EMA resumes with EMA, and the cosine decay takes the values of its formula.
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Models.Vae;
using InstaFlow.Training;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Tests.Training;

public sealed class VaeTrainingTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("vae-train-").FullName;
    private readonly string _data;

    public VaeTrainingTests() => _data = TinyTwemoji.Write(Path.Combine(_tmp, "data"));

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private VaeTrainingOptions Options(string name, int steps) => new()
    {
        DataDir = _data, OutDir = Path.Combine(_tmp, name), Steps = steps, BatchSize = 2, LearningRate = 3e-3f,
        BlockOutChannels = [8, 8], NormNumGroups = 4, Seed = 7, CheckpointEvery = 0,
    };

    /// <summary>Name -> values of every tensor in the directory's current checkpoint.</summary>
    private static Dictionary<string, float[]> CheckpointTensors(string outDir)
    {
        var dir = Path.Combine(outDir, "checkpoints");
        using var file = SafeTensors.Open(Path.Combine(dir, Checkpoint.ReadState(dir).Weights));
        return file.Names.ToDictionary(n => n, n => { using var t = file.ReadF32(n); return t.Span.ToArray(); });
    }

    private sealed class StopAt(long step) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Step == step) throw new OperationCanceledException($"stopped at step {step}");
        }
    }

    [Fact]
    public void Run_StoppedAndResumedWithDecayEmaAndEval_BitIdenticalToOneRunAndToNoEval()
    {
        var o = Options("whole", 8) with { WarmupSteps = 2, DecayFrom = 4, MinLearningRate = 1e-4f, EmaDecay = 0.8f, EvalEvery = 3 };
        var whole = VaeTraining.Run(o);

        // a crash after the checkpoint of step 5 (step 6 is reported before its checkpoint would be written)
        var split = o with { OutDir = Path.Combine(_tmp, "split"), CheckpointEvery = 5 };
        Assert.Throws<OperationCanceledException>(() => VaeTraining.Run(split with { Progress = new StopAt(6) }));
        Assert.Equal(5, Checkpoint.ReadState(Path.Combine(split.OutDir, "checkpoints")).Step);
        var notes = new List<string>();
        var resumed = VaeTraining.Run(split, notes.Add);
        Assert.Contains("resumed at step 5", notes);

        var a = CheckpointTensors(o.OutDir);
        var b = CheckpointTensors(split.OutDir);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.Contains("ema.0", a.Keys);
        foreach (var (name, va) in a)
            Assert.True(va.AsSpan().SequenceEqual(b[name]), $"{name}: max abs diff {TestUtil.MaxAbsDiff(va, b[name])} after resuming");
        Assert.Equal(whole.EvalPsnr, resumed.EvalPsnr);
        Assert.Equal(whole.LivePsnr, resumed.LivePsnr);

        // measuring along the way leaves the run as it would have been without it
        var quiet = VaeTraining.Run(o with { OutDir = Path.Combine(_tmp, "quiet"), EvalEvery = 0 });
        var c = CheckpointTensors(Path.Combine(_tmp, "quiet"));
        foreach (var (name, va) in a)
            Assert.True(va.AsSpan().SequenceEqual(c[name]), $"{name}: max abs diff {TestUtil.MaxAbsDiff(va, c[name])} with vs without --eval-every");
        Assert.Equal(whole.EvalPsnr, quiet.EvalPsnr);
    }

    [Fact]
    public void Run_WithEma_ExportsTheAveragedWeightsAndReportsTheirPsnr()
    {
        var o = Options("ema", 6) with { EmaDecay = 0.5f };
        var res = VaeTraining.Run(o);
        Assert.NotNull(res.LivePsnr);

        var ckpt = CheckpointTensors(o.OutDir);
        var vae = TextToImageTraining.LoadVae(Path.Combine(o.OutDir, "vae"));
        var named = vae.NamedParameters().ToList();
        static float[] Half(float[] x) => x.Select(v => (float)(Half)v).ToArray();
        int liveDiffers = 0;
        for (int i = 0; i < named.Count; i++)
        {
            var exported = named[i].Param.Value.Span.ToArray();
            // the folder is F16: exactly the EMA shadow rounded to half precision
            var ema = Half(ckpt[$"ema.{i}"]);
            Assert.True(ema.AsSpan().SequenceEqual(exported), $"exported {named[i].Name} vs EMA in F16: max abs diff {TestUtil.MaxAbsDiff(ema, exported)}");
            if (!Half(ckpt["model." + named[i].Name]).AsSpan().SequenceEqual(exported)) liveDiffers++;
        }
        Assert.True(liveDiffers > named.Count / 2, $"only {liveDiffers} of {named.Count} exported tensors differ from the live weights");

        // the reported PSNR is exactly the exported F16 weights' (the same weights, the same images, the same code)
        var data = TwemojiImages.Load(_data);
        double exportedPsnr = VaeTraining.EvalPsnr(vae, data.Images, data.EvalIndices);
        Assert.True(exportedPsnr == res.EvalPsnr, $"PSNR of the folder {exportedPsnr:R} vs reported {res.EvalPsnr:R}");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(o.OutDir, "result.json")));
        Assert.Equal(res.EvalPsnr, doc.RootElement.GetProperty("eval_psnr_db").GetDouble(), 9);
        Assert.Equal(res.LivePsnr!.Value, doc.RootElement.GetProperty("eval_psnr_live_db").GetDouble(), 9);
        Assert.Equal(0.5, doc.RootElement.GetProperty("ema_decay").GetDouble(), 6);
    }

    [Fact]
    public void Run_EvalEvery_WritesEvalLinesToTheLogAndTheProgress()
    {
        var reports = new List<TrainingProgress>();
        var o = Options("evals", 6) with { EvalEvery = 2, EmaDecay = 0.9f, Progress = new SyncProgress(reports.Add) };
        VaeTraining.Run(o);

        var evals = File.ReadAllLines(Path.Combine(o.OutDir, "train_log.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("eval", out _)).ToList();
        Assert.Equal([2L, 4L, 6L], evals.Select(e => e.GetProperty("step").GetInt64()));
        foreach (var e in evals)
        {
            double psnr = e.GetProperty("eval").GetProperty("psnr_db").GetDouble(), live = e.GetProperty("eval").GetProperty("psnr_live_db").GetDouble();
            Assert.True(psnr is > 0 and < 100 && live is > 0 and < 100, $"PSNR {psnr} / {live}");
        }
        Assert.Null(reports[0].Eval);
        Assert.StartsWith("psnr_db ", reports[2].Eval);
        Assert.EndsWith("at step 2", reports[2].Eval);
        Assert.Contains("; psnr_db", reports[^1].ToJob().Detail);
    }

    [Fact]
    public void Run_CheckpointWithoutEmaResumedWithEma_StartsTheAverageFromTheResumedWeights()
    {
        var o = Options("late-ema", 3);
        VaeTraining.Run(o);
        var before = CheckpointTensors(o.OutDir);
        // a trainer that resumes that checkpoint with EMA: the shadow starts equal to the resumed weights
        var vae = new AutoencoderKL(new AutoencoderKLConfig { BlockOutChannels = [8, 8], LayersPerBlock = 1, NormNumGroups = 4, LatentChannels = 4, SampleSize = TinyTwemoji.Size });
        var data = TwemojiImages.Load(_data);
        var opts = new TrainerOptions { EmaDecay = 0.9f, EmaMayStartOnResume = true, CheckpointDir = Path.Combine(o.OutDir, "checkpoints") };
        var trainer = new Trainer(vae, new VaeObjective(vae, data.Images, data.TrainIndices, 2, 1e-4f), opts);
        Assert.True(trainer.TryResume());
        var names = vae.NamedParameters().Select(p => p.Name).ToList();
        for (int i = 0; i < names.Count; i++)
            Assert.True(trainer.Ema!.Shadow[i].Span.SequenceEqual(before["model." + names[i]]), $"ema.{i} ({names[i]}) is not the resumed weights");
        // without the permission the mismatch is still an error naming the option
        var strict = new Trainer(vae, new VaeObjective(vae, data.Images, data.TrainIndices, 2, 1e-4f), opts with { EmaMayStartOnResume = false });
        Assert.Contains("--ema", Assert.Throws<InvalidInputException>(() => strict.TryResume()).Message);

        var notes = new List<string>();
        var res = VaeTraining.Run(o with { Steps = 5, EmaDecay = 0.9f }, notes.Add);
        Assert.Contains("resumed at step 3; EMA starts from the resumed weights", notes);
        Assert.NotNull(res.LivePsnr);
        Assert.Contains("ema.0", CheckpointTensors(o.OutDir).Keys);
    }

    [Fact]
    public void LearningRateAt_WarmupThenCosineDecay_FollowsTheFormula()
    {
        var o = new TrainerOptions { LearningRate = 1e-3f, WarmupSteps = 10, DecayFromStep = 50, DecayEndStep = 100, MinLearningRate = 1e-4f };
        (long Step, float Lr)[] expected =
        [
            (0, 1e-4f), (4, 5e-4f), (9, 1e-3f), (49, 1e-3f), (50, 1e-3f),
            (75, 5.5e-4f), (100, 1e-4f), (150, 1e-4f),
            // a quarter of the way: floor + (lr - floor) (1 + cos(pi / 4)) / 2
            (62, 1e-4f + 9e-4f * (float)((1 + Math.Cos(Math.PI * 12 / 50)) / 2)),
        ];
        foreach (var (step, lr) in expected)
        {
            float got = Trainer.LearningRateAt(o, step);
            Assert.True(Math.Abs(got - lr) < 1e-9f, $"step {step}: lr {got}, expected {lr} (diff {Math.Abs(got - lr)})");
        }
        // no decay given: constant after warmup, as before
        Assert.Equal(1e-3f, Trainer.LearningRateAt(o with { DecayFromStep = null }, 5000));
        // a decay that starts inside the warmup never exceeds the warming-up rate
        float first = Trainer.LearningRateAt(o with { DecayFromStep = 0 }, 0);
        Assert.True(Math.Abs(first - 1e-4f) < 1e-9f, $"decay from step 0, first step: lr {first}, expected the warmup's 1e-4");
    }

    [Fact]
    public void Options_OutOfRange_InvalidInputNamesTheOption()
    {
        var o = Options("bad", 10);
        Assert.Contains("--decay-from", Assert.Throws<InvalidInputException>(() => (o with { DecayFrom = 11 }).Validate()).Message);
        Assert.Contains("--min-lr", Assert.Throws<InvalidInputException>(() => (o with { DecayFrom = 5, MinLearningRate = 1f }).Validate()).Message);
        Assert.Contains("--decay-from", Assert.Throws<InvalidInputException>(() => (o with { MinLearningRate = 1e-4f }).Validate()).Message);
        Assert.Contains("--ema", Assert.Throws<InvalidInputException>(() => (o with { EmaDecay = 1f }).Validate()).Message);
        Assert.Contains("--warmup", Assert.Throws<InvalidInputException>(() => (o with { WarmupSteps = -1 }).Validate()).Message);
        Assert.Contains("--eval-every", Assert.Throws<InvalidInputException>(() => (o with { EvalEvery = -1 }).Validate()).Message);
        // the warmup when --warmup is not given: today's min(100, steps / 10)
        Assert.Equal(1, o.Warmup);
        Assert.Equal(100, (o with { Steps = 5000 }).Warmup);
    }

    /// <summary>Synchronous, unlike System.Progress, so every report is in the list when Run returns.</summary>
    private sealed class SyncProgress(Action<TrainingProgress> f) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => f(value);
    }
}
