// `instaflow bench train`: times whole training steps (forward, backward, clipping, AdamW, EMA) of the Twemoji 1-RF
// networks on synthetic latents and token ids, and counts the FLOPs a step does in GEMM, conv and attention.
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training.TextToImage;

public sealed record TrainBenchResult(int BatchSize, int Threads, long Parameters, double MedianSeconds, double MinSeconds, double MaxSeconds,
    long FlopsPerStep, double PeakGflops)
{
    /// <summary>Ranks that shared each step's batch (FlopsPerStep counts this rank's share).</summary>
    public int Ranks { get; init; } = 1;
    /// <summary>Median wall time of one step's gradient all-reduce (0 on one rank).</summary>
    public double MedianAllReduceSeconds { get; init; }
    /// <summary>Per-op time and FLOPs summed over <see cref="Runs"/> extra profiled steps (null unless asked for).</summary>
    public IReadOnlyList<OpTiming>? Profile { get; init; }
    public int Runs { get; init; }

    public double Gflops => FlopsPerStep / MedianSeconds / 1e9;
    public double PeakFraction => Gflops / PeakGflops;
}

public static class TrainBench
{
    /// <summary>The shipped model's shapes: 64x64 images, a 16x16x4 latent, CLIP vocabulary, 16-token prompts.</summary>
    public static readonly AutoencoderKLConfig TwemojiVae = new() { BlockOutChannels = [16, 32, 32], SampleSize = 64 };
    private const int ClipVocabulary = 49408;

    /// <summary>Two warm-up steps, then runs timed steps; the FLOPs are counted on the first timed step.</summary>
    /// <param name="batch">Samples per step (the global batch when <paramref name="world"/> is given).</param>
    /// <param name="runs">Timed steps.</param>
    /// <param name="threads">Worker threads for the kernels.</param>
    /// <param name="architecture">Text encoder and UNet sizes (null: the shipped model's).</param>
    /// <param name="world">Ranks that share each step's batch of <paramref name="batch"/> (null: this process alone).</param>
    /// <param name="profile">Also run <paramref name="runs"/> more steps under an <see cref="OpProfile"/> (after the
    /// timed ones, which stay unprofiled) and return its per-op breakdown.</param>
    public static TrainBenchResult Run(int batch, int runs, int threads, FlowArchitecture? architecture = null, Distributed.ICommunicator? world = null,
        bool profile = false)
    {
        if (batch < 1 || runs < 1) throw new InvalidInputException($"batch and runs must be at least 1 (got {batch} and {runs})");
        int saved = Par.Threads;
        Par.Threads = threads;
        try
        {
            var a = architecture ?? new FlowArchitecture();
            var net = TextToImageTraining.NewNetwork(a, TwemojiVae, ClipVocabulary, 0);
            int side = TwemojiVae.SampleSize / TwemojiVae.ScaleFactor;
            int[] shape = [TwemojiVae.LatentChannels, side, side];
            // a fixed pool of synthetic latents and prompts to draw batches from, as the real trainer does (no scope is
            // open here, so these live for the whole run)
            const int pool = 256;
            var latents = new TorchGenerator(1).Randn(pool, shape[0], shape[1], shape[2]);
            var ids = Tensor.FromArray(Enumerable.Range(0, pool * a.MaxTokens).Select(i => (float)((i * 7919 + 13) % ClipVocabulary)).ToArray(), pool, a.MaxTokens);
            var nullIds = Tensor.FromArray(new float[a.MaxTokens], 1, a.MaxTokens);
            var pairs = new IndependentCoupling(shape, (rng, b) =>
            {
                var rows = TwemojiImages.Draw(rng, Enumerable.Range(0, pool).ToArray(), b);
                return (TwemojiImages.Gather(latents, rows), TwemojiImages.Gather(ids, rows));
            });
            var objective = new RectifiedFlowObjective(new FlowModel(net, FlowConvention.InstaFlow), pairs, new UniformTime(), batch,
                new CondDropout(TextToImageTraining.ConditionDropout, nullIds));
            var trainer = new Trainer(net, objective, new TrainerOptions { LearningRate = 1e-4f, MaxGradNorm = 1f, EmaDecay = 0.995f, Seed = 2, World = world });
            trainer.Train(2);
            long flops = 0;
            var times = new double[runs];
            var reduce = new double[runs];
            for (int i = 0; i < runs; i++)
            {
                FlopCounter.Reset();
                FlopCounter.Enabled = i == 0;
                var before = trainer.AllReduceTime;
                var clock = Stopwatch.StartNew();
                trainer.Train(trainer.Step + 1);
                times[i] = clock.Elapsed.TotalSeconds;
                reduce[i] = (trainer.AllReduceTime - before).TotalSeconds;
                if (i == 0) flops = FlopCounter.Flops;
                FlopCounter.Enabled = false;
            }
            IReadOnlyList<OpTiming>? ops = null;
            if (profile)
            {
                var p = new OpProfile();
                using (p.Start()) trainer.Train(trainer.Step + runs);
                ops = p.Entries();
            }
            Array.Sort(times);
            Array.Sort(reduce);
            double peak = Tensors.Bench.KernelBench.MeasurePeakGflops(threads, 3, 5_000_000);
            return new TrainBenchResult(batch, threads, net.ParameterCount, times[runs / 2], times[0], times[^1], flops, peak)
            {
                Ranks = trainer.World.Size, MedianAllReduceSeconds = reduce[runs / 2], Profile = ops, Runs = runs,
            };
        }
        finally
        {
            FlopCounter.Enabled = false;
            Par.Threads = saved;
        }
    }
}
