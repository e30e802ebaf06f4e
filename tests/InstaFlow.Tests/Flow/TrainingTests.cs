// Trainer, checkpoints, reflow pair generation and objectives: exact resume, shard-invariant pairs, a small conv
// net learning on 8x8 images, and AdamW against a hand-computed update.
using InstaFlow.Flow;
using InstaFlow.Experiments;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Training;

namespace InstaFlow.Tests.Flow;

public class TrainingTests
{
    private static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "instaflow-flow-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    [Fact]
    public void AdamW_TwoSteps_MatchesHandComputedUpdate()
    {
        var p = new Parameter([2]);
        p.Value.Span[0] = 1f; p.Value.Span[1] = -2f;
        var opt = new AdamW([p], 0.1f) { WeightDecay = 0.01f };
        float[][] grads = [[0.5f, -1f], [0.1f, 0.3f]];
        // Step 1: m_hat = g, v_hat = g^2, so the step is lr * sign(g); decay multiplies w by 1 - lr * wd = 0.999.
        float[][] expected = [[0.899f, -1.898f], [0.81779691f, -1.85331714f]];
        for (int s = 0; s < 2; s++)
        {
            p.Value.Grad = Tensor.FromArray(grads[s], 2);
            opt.Step();
            TestUtil.AssertClose(expected[s], p.Value.Span, 1e-6f, what: $"AdamW after step {s + 1}");
        }
    }

    // A Gaussian blob at (2, -1) as the data: enough structure for the loss to have something to learn.
    private static (Tensor, Tensor?) Blob(TorchGenerator rng, int n)
    {
        var x = rng.Randn(n, 2);
        var s = x.Span;
        for (int i = 0; i < n; i++) { s[2 * i] = 0.3f * s[2 * i] + 2f; s[2 * i + 1] = 0.3f * s[2 * i + 1] - 1f; }
        return (x, null);
    }

    private static (MlpVelocity Net, Trainer Trainer) MakeTrainer(ulong initSeed, string? ckpt)
    {
        var net = new MlpVelocity(2, 16, 2, timeScale: 1000f);
        net.InitDefault(initSeed);
        var flow = new FlowModel(net, FlowConvention.RectifiedFlowRepo);
        var objective = new RectifiedFlowObjective(flow, new IndependentCoupling([2], Blob), new LogitNormalTime(), 32);
        var opts = new TrainerOptions { LearningRate = 1e-2f, WarmupSteps = 3, MaxGradNorm = 1f, EmaDecay = 0.9f, Seed = 11, CheckpointDir = ckpt };
        return (net, new Trainer(net, objective, opts));
    }

    /// <summary>Collects reports synchronously (System.Progress would post them to the thread pool, after Train returns).</summary>
    private sealed class Recorder<T> : IProgress<T>
    {
        public readonly List<T> Reports = [];
        public void Report(T value) => Reports.Add(value);
    }

    [Fact]
    public void Trainer_Progress_ReportsEveryStepWithTheLastLoss()
    {
        var net = new MlpVelocity(2, 16, 2, timeScale: 1000f);
        net.InitDefault(1);
        var objective = new RectifiedFlowObjective(new FlowModel(net, FlowConvention.RectifiedFlowRepo), new IndependentCoupling([2], Blob), new UniformTime(), 16);
        var progress = new Recorder<TrainingProgress>();
        var trainer = new Trainer(net, objective, new TrainerOptions { LearningRate = 1e-2f, WarmupSteps = 4, Seed = 3, Progress = progress });
        trainer.Train(6);
        Assert.Equal([1L, 2, 3, 4, 5, 6], progress.Reports.Select(r => r.Step));
        Assert.All(progress.Reports, r => Assert.Equal(6, r.TotalSteps));
        Assert.Equal(trainer.LastLoss, progress.Reports[^1].Loss);
        Assert.Equal(trainer.LearningRateAt(0), progress.Reports[0].LearningRate); // warmup: the first step's rate
        Assert.True(progress.Reports[^1].Elapsed >= progress.Reports[0].Elapsed);
    }

    [Fact]
    public void Trainer_ResumeFromCheckpoint_IsBitwiseIdenticalToStraightThrough()
    {
        var (straight, t1) = MakeTrainer(1, null);
        t1.Train(10);

        string dir = TempDir();
        try
        {
            var (_, first) = MakeTrainer(1, dir);
            first.Train(5);
            // A different init proves that everything comes from the checkpoint.
            var (resumed, second) = MakeTrainer(99, dir);
            Assert.True(second.TryResume());
            Assert.Equal(5, second.Step);
            second.Train(10);

            var a = straight.NamedParameters().ToList(); var b = resumed.NamedParameters().ToList();
            for (int i = 0; i < a.Count; i++)
                Assert.True(a[i].Param.Value.Span.SequenceEqual(b[i].Param.Value.Span),
                    $"{a[i].Name}: max diff {TestUtil.MaxAbsDiff(a[i].Param.Value.Span, b[i].Param.Value.Span)} after resume");
            for (int i = 0; i < t1.Ema!.Shadow.Length; i++)
                Assert.True(t1.Ema.Shadow[i].Span.SequenceEqual(second.Ema!.Shadow[i].Span), $"EMA tensor {i} differs after resume");
            Assert.Single(Directory.GetFiles(dir, "*.safetensors"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void PairGenerator_Shards_MatchOneShardAndAnyRange()
    {
        var net = new MlpVelocity(2, 8, 1);
        net.InitDefault(3);
        var flow = new FlowModel(net, FlowConvention.RectifiedFlowRepo);
        // Adaptive steps are chosen per batch, so this also checks that batches are aligned in pair-index space.
        var gen = new PairGenerator(flow, new DormandPrinceSampler(1e-3f, 1e-3f), [2], baseSeed: 5, grid: [0f, 0.5f, 1f], batchSize: 4);
        using var scope = TensorScope.Begin();
        var whole = gen.Generate(0, 11);
        var middle = gen.Generate(3, 6);
        Assert.True(whole.Span.Slice(3 * 3 * 2, 6 * 3 * 2).SequenceEqual(middle.Span),
            $"pairs 3..8 differ between ranges: max diff {TestUtil.MaxAbsDiff(whole.Span.Slice(3 * 3 * 2, 6 * 3 * 2), middle.Span)}");
        string dir = TempDir();
        try
        {
            PairShards.Write(gen, dir, 11, 3);
            File.Delete(PairShards.Path(dir, 6));
            PairShards.Write(gen, dir, 11, 3); // resumes: only the missing shard is made again
            var set = PairShards.Load(dir);
            Assert.Equal([0f, 0.5f, 1f], set.Grid);
            Assert.True(whole.Span.SequenceEqual(set.Points.Span), $"sharded pairs differ: max diff {TestUtil.MaxAbsDiff(whole.Span, set.Points.Span)}");
            var other = new PairGenerator(flow, new EulerSampler(2), [2], baseSeed: 6, batchSize: 4);
            Assert.Throws<InvalidInputException>(() => PairShards.Write(other, dir, 11, 3));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void CondDropout_ProbabilityOneAndZero_ReplacesAllOrNone()
    {
        using var scope = TensorScope.Begin();
        var cond = TestUtil.Random(1, 5, 3);
        var nul = Tensor.Full(7f, 1, 3);
        var rng = new TorchGenerator(0);
        Assert.All(new CondDropout(1f, nul).Apply(cond, rng).ToArray(), v => Assert.Equal(7f, v));
        Assert.Equal(cond.ToArray(), new CondDropout(0f, nul).Apply(cond, rng).ToArray());
    }

    [Fact]
    public void Distillation_OneStepOnStoredPairs_LossFalls()
    {
        using var scope = TensorScope.Begin();
        // Pairs of a known straight map z1 = 0.5 z0 + (1, 1): the one-step student must learn it.
        var points = Tensor.EmptyPersistent(256, 2, 2);
        var rng = new TorchGenerator(2);
        for (int i = 0; i < 256; i++)
            for (int d = 0; d < 2; d++)
            {
                float z0 = (float)rng.NextNormalDouble();
                points[i, 0, d] = z0; points[i, 1, d] = 0.5f * z0 + 1f;
            }
        var student = new MlpVelocity(2, 32, 2, timeScale: 1000f);
        student.InitDefault(4);
        var flow = new FlowModel(student, FlowConvention.InstaFlow);
        var trainer = new Trainer(student, new DistillationObjective(flow, new StoredPairs(new PairSet(points, [0f, 1f])), [0f, 1f], 64),
            new TrainerOptions { LearningRate = 1e-2f, Seed = 1 });
        trainer.Train(1);
        float first = trainer.LastLoss;
        trainer.Train(150);
        Assert.True(trainer.LastLoss < 0.1f * first, $"distillation loss went from {first} to {trainer.LastLoss}");
    }
}

public class OnlineReflowTests
{
    [Fact]
    public void TeacherPairs_Grid_SolvesTheTeacherFromTheTrainingNoise()
    {
        var net = new MlpVelocity(2, 8, 1);
        net.InitDefault(8);
        var teacher = new FlowModel(net, FlowConvention.InstaFlow);
        using var scope = TensorScope.Begin();
        var batch = new TeacherPairs(teacher, new EulerSampler(4), [2], [0f, 0.5f, 1f]).Next(new TorchGenerator(5), 6);
        var noise = new TorchGenerator(5).Randn(6, 2);
        Assert.Equal(3, batch.Points.Length);
        Assert.Equal(noise.ToArray(), batch.Points[0].ToArray());
        var end = new EulerSampler(4).Sample(teacher.Field(), new EulerSampler(4).Sample(teacher.Field(), noise, 0f, 0.5f).X, 0.5f, 1f).X;
        TestUtil.AssertClose(end, batch.Points[2], 0f, what: "online pair end state");
    }
}
