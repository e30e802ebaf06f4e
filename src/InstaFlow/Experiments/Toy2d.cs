// The paper's 2D experiment: pi0 = N(0, I), pi1 = a ring of Gaussians, an MLP flow. Trains 1-RF, reflows to 2-RF and
// 3-RF, distils 2-RF into a one-step model, and measures straightness, sample error and transport cost. Experiments
// sit above every layer, so they may use the Pipelines PNG writer for figures.
using InstaFlow.Flow;
using System.Diagnostics;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Training;

namespace InstaFlow.Experiments;

public sealed record Toy2dOptions
{
    public ulong Seed { get; init; }
    /// <summary>Where the figure, logs and pair shards go (null: nothing is written).</summary>
    public string? OutDir { get; init; }
    /// <summary>Receives each stage's steps (Stage "1-RF", "pairs", ...; the count restarts per stage); null: none.</summary>
    public IProgress<JobProgress>? Progress { get; init; }
}

public sealed record Toy2dRow(string Model, double Straightness, double Error1Step, double Error100Step, double TransportCost);

public sealed record Toy2dResult(IReadOnlyList<Toy2dRow> Rows, double Seconds, string? FigurePath);

public static class Toy2d
{
    private const int Modes = 6, EvalSamples = 2048, Batch = 512, Pairs = 8192;
    private const float Radius = 4f, ModeStd = 0.35f;
    private static readonly FlowConvention Convention = FlowConvention.RectifiedFlowRepo;

    /// <summary>Draws n points of pi1: equal-weight Gaussians on a circle.</summary>
    public static Tensor Target(TorchGenerator rng, int n)
    {
        var x = rng.Randn(n, 2);
        var s = x.Span;
        for (int i = 0; i < n; i++)
        {
            double a = 2 * Math.PI * (rng.NextUInt64() % Modes) / Modes;
            s[2 * i] = (float)(Radius * Math.Cos(a)) + ModeStd * s[2 * i];
            s[2 * i + 1] = (float)(Radius * Math.Sin(a)) + ModeStd * s[2 * i + 1];
        }
        return x;
    }

    public static Toy2dResult Run(Toy2dOptions o)
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        string? Out(string name) => o.OutDir == null ? null : Path.Combine(o.OutDir, name);
        if (o.OutDir != null) Directory.CreateDirectory(o.OutDir);
        var sampler = new DormandPrinceSampler(1e-4f, 1e-4f);

        var rf1 = NewFlow(o.Seed);
        Train(rf1, new IndependentCoupling([2], (rng, n) => (Target(rng, n), null)), 2500, o, "1-RF", Out("1-rf.jsonl"), o.Seed + 1);
        var pairs1 = MakePairs(rf1, sampler, o.Seed + 2, Out("pairs-1rf"), o);

        var rf2 = CopyOf(rf1);
        Train(rf2, new StoredPairs(pairs1), 2000, o, "2-RF", Out("2-rf.jsonl"), o.Seed + 3);
        var pairs2 = MakePairs(rf2, sampler, o.Seed + 4, Out("pairs-2rf"), o);

        var rf3 = CopyOf(rf2);
        Train(rf3, new StoredPairs(pairs2), 1500, o, "3-RF", Out("3-rf.jsonl"), o.Seed + 5);

        var distilled = CopyOf(rf2);
        var trainer = new Trainer((MlpVelocity)distilled.Network, new DistillationObjective(distilled, new StoredPairs(pairs2), [0f, 1f], Batch),
            TrainOptions(o, "distill", Out("distilled.jsonl"), o.Seed + 6));
        trainer.Train(1500);

        var evalRng = new TorchGenerator(o.Seed + 7);
        var noise = evalRng.Randn(EvalSamples, 2);
        var reference = Target(evalRng, EvalSamples);
        var rows = new List<Toy2dRow>();
        foreach (var (name, flow) in new[] { ("1-RF", rf1), ("2-RF", rf2), ("3-RF", rf3), ("distilled", distilled) })
            rows.Add(Evaluate(name, flow, noise, reference));

        string? figure = Out("trajectories.png");
        if (figure != null) WriteFigure(figure, [rf1, rf2], noise);
        pairs1.Points.Dispose(); pairs2.Points.Dispose();
        return new Toy2dResult(rows, clock.Elapsed.TotalSeconds, figure);
    }

    private static FlowModel NewFlow(ulong seed)
    {
        var net = new MlpVelocity(2, 64, 3);
        net.InitDefault(seed);
        return new FlowModel(net, Convention);
    }

    /// <summary>Reflow and distillation start from the teacher's weights, as in the paper.</summary>
    private static FlowModel CopyOf(FlowModel f)
    {
        var net = new MlpVelocity(2, 64, 3);
        foreach (var ((_, dst), (_, src)) in net.NamedParameters().Zip(((MlpVelocity)f.Network).NamedParameters())) dst.Value.CopyFrom(src.Value);
        return new FlowModel(net, Convention);
    }

    private static TrainerOptions TrainOptions(Toy2dOptions o, string label, string? log, ulong seed) => new()
    {
        LearningRate = 3e-3f, WarmupSteps = 100, MaxGradNorm = 1f, Seed = seed, LogPath = log,
        Progress = TrainingProgress.AsJob(o.Progress, label),
    };

    private static void Train(FlowModel flow, IPairSource pairs, int steps, Toy2dOptions o, string label, string? log, ulong seed)
    {
        var objective = new RectifiedFlowObjective(flow, pairs, new UniformTime(), Batch);
        new Trainer((MlpVelocity)flow.Network, objective, TrainOptions(o, label, log, seed)).Train(steps);
    }

    private static PairSet MakePairs(FlowModel teacher, OdeSampler sampler, ulong seed, string? dir, Toy2dOptions o)
    {
        var gen = new PairGenerator(teacher, sampler, [2], seed, batchSize: 1024);
        if (dir == null)
        {
            var points = Tensor.EmptyPersistent(Pairs, 2, 2);
            using (var s = TensorScope.Begin()) points.CopyFrom(gen.Generate(0, Pairs));
            return new PairSet(points, gen.Grid);
        }
        PairShards.Write(gen, dir, Pairs, 2048, done => o.Progress?.Report(new JobProgress(done, Pairs, Stage: "pairs")));
        return PairShards.Load(dir);
    }

    private static Toy2dRow Evaluate(string name, FlowModel flow, Tensor noise, Tensor reference)
    {
        using var scope = TensorScope.Begin();
        var field = flow.Field();
        var traj = new EulerSampler(100).Sample(field, noise, keepTrajectory: true).Trajectory!;
        var one = new EulerSampler(1).Sample(field, noise).X;
        return new Toy2dRow(name, Straightness.Estimate(field, traj), EnergyDistance(one, reference),
            EnergyDistance(traj.States[^1], reference), Straightness.TransportCost(noise, traj.States[^1]));
    }

    /// <summary>Energy distance 2E|X - Y| - E|X - X'| - E|Y - Y'| between two [n, 2] samples (0 iff equal in law).</summary>
    public static double EnergyDistance(Tensor x, Tensor y) => 2 * MeanDistance(x, y) - MeanDistance(x, x) - MeanDistance(y, y);

    private static double MeanDistance(Tensor a, Tensor b)
    {
        var p = a.Span; var q = b.Span;
        int n = a.Dim(0), m = b.Dim(0);
        double acc = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double dx = p[2 * i] - q[2 * j], dy = p[2 * i + 1] - q[2 * j + 1];
                acc += Math.Sqrt(dx * dx + dy * dy);
            }
        return acc / ((double)n * m);
    }

    private const int Panel = 420;
    private const float Extent = 6f;

    /// <summary>Side-by-side panels of 100-step trajectories (grey), starts (blue) and ends (red), one per flow.</summary>
    private static void WriteFigure(string path, FlowModel[] flows, Tensor noise)
    {
        int w = Panel * flows.Length, h = Panel;
        var rgb = new byte[w * h * 3];
        Array.Fill(rgb, (byte)255);
        using var scope = TensorScope.Begin();
        const int Shown = 300;
        var start = Ops.Narrow(noise, 0, 0, Shown);
        for (int f = 0; f < flows.Length; f++)
        {
            var traj = new EulerSampler(100).Sample(flows[f].Field(), start, keepTrajectory: true).Trajectory!;
            for (int i = 0; i < Shown; i++)
            {
                for (int s = 0; s + 1 < traj.States.Count; s++)
                    Line(rgb, w, f, traj.States[s].Span.Slice(2 * i, 2), traj.States[s + 1].Span.Slice(2 * i, 2), [170, 170, 170]);
                Dot(rgb, w, f, traj.States[0].Span.Slice(2 * i, 2), [40, 90, 220]);
                Dot(rgb, w, f, traj.States[^1].Span.Slice(2 * i, 2), [220, 50, 40]);
            }
            if (f > 0) for (int y = 0; y < h; y++) Put(rgb, w, f, f * Panel, y, [0, 0, 0]);
        }
        Png.Write(path, w, h, 3, rgb);
    }

    private static (int X, int Y) ToPixel(int panel, ReadOnlySpan<float> p) =>
        (panel * Panel + (int)((p[0] + Extent) / (2 * Extent) * Panel), (int)((Extent - p[1]) / (2 * Extent) * Panel));

    /// <summary>Sets one pixel, clipped to the panel so that stray points never spill into the neighbour.</summary>
    private static void Put(byte[] rgb, int w, int panel, int x, int y, byte[] c)
    {
        if (x < panel * Panel || x >= (panel + 1) * Panel || y < 0 || y >= Panel) return;
        c.CopyTo(rgb, (y * w + x) * 3);
    }

    private static void Line(byte[] rgb, int w, int panel, ReadOnlySpan<float> a, ReadOnlySpan<float> b, byte[] c)
    {
        var (x0, y0) = ToPixel(panel, a);
        var (x1, y1) = ToPixel(panel, b);
        int n = Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0));
        for (int i = 0; i <= n; i++)
            Put(rgb, w, panel, x0 + (n == 0 ? 0 : (x1 - x0) * i / n), y0 + (n == 0 ? 0 : (y1 - y0) * i / n), c);
    }

    private static void Dot(byte[] rgb, int w, int panel, ReadOnlySpan<float> p, byte[] c)
    {
        var (x, y) = ToPixel(panel, p);
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) Put(rgb, w, panel, x + dx, y + dy, c);
    }
}
