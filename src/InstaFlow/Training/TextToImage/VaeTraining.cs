// Stage 0 of the Twemoji recipe: a small AutoencoderKL trained from scratch (L2 reconstruction + a small KL term),
// its reconstruction PSNR on the eval split, and scaling_factor = 1 / std of the latents written into its config.
using InstaFlow.Models;
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training.TextToImage;

/// <summary>Data, output folder, architecture, optimisation and progress settings of the VAE stage.</summary>
public sealed record VaeTrainingOptions
{
    public required string DataDir { get; init; }
    public required string OutDir { get; init; }
    public int[] BlockOutChannels { get; init; } = [32, 64, 64];
    public int LayersPerBlock { get; init; } = 1;
    public int NormNumGroups { get; init; } = 8;
    public int Steps { get; init; } = 2000;
    public int BatchSize { get; init; } = 16;
    public float LearningRate { get; init; } = 1e-3f;
    public float KlWeight { get; init; } = 1e-4f;
    public ulong Seed { get; init; }
    public int CheckpointEvery { get; init; } = 200;
    /// <summary>Receives a report after every training step (null: none).</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }
}

public sealed record VaeTrainingResult(double EvalPsnr, float ScalingFactor, double Seconds, long Parameters);

/// <summary>L2 reconstruction of a sampled latent plus KL(q(z|x) || N(0, I)), both as means over elements.</summary>
public sealed class VaeObjective(AutoencoderKL vae, Tensor images, int[] pool, int batchSize, float klWeight) : ITrainingObjective
{
    public Tensor Loss(TorchGenerator rng)
    {
        var x = TwemojiImages.Gather(images, TwemojiImages.Draw(rng, pool, batchSize));
        var (mean, logvar) = vae.Encode(x);
        var std = Ops.Exp(Ops.MulScalar(logvar, 0.5f));
        var z = Ops.Add(mean, Ops.Mul(std, rng.Randn(mean.ShapeArray())));
        var rec = Losses.Mse(vae.Decode(z), x);
        var kl = Ops.MulScalar(Ops.MeanAll(Ops.Sub(Ops.Add(Ops.Square(mean), Ops.Exp(logvar)), Ops.AddScalar(logvar, 1f))), 0.5f);
        return Ops.Add(rec, Ops.MulScalar(kl, klWeight));
    }
}

/// <summary>Stage 0 of the Twemoji recipe: trains the AutoencoderKL and writes it as a diffusers vae/ folder.</summary>
public static class VaeTraining
{
    /// <summary>
    /// Trains (resuming from OutDir/checkpoints when present), measures eval-split PSNR, sets scaling_factor and writes
    /// OutDir/vae, train_log.jsonl and result.json. Every step is reported to o.Progress; log gets one-line notes.
    /// </summary>
    public static VaeTrainingResult Run(VaeTrainingOptions o, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        var data = TwemojiImages.Load(o.DataDir);
        int size = data.Images.Dim(2);
        var cfg = new AutoencoderKLConfig
        {
            BlockOutChannels = o.BlockOutChannels, LayersPerBlock = o.LayersPerBlock, NormNumGroups = o.NormNumGroups,
            LatentChannels = 4, SampleSize = size,
        };
        var vae = new AutoencoderKL(cfg);
        vae.InitDefault(o.Seed);
        Directory.CreateDirectory(o.OutDir);
        var trainer = new Trainer(vae, new VaeObjective(vae, data.Images, data.TrainIndices, o.BatchSize, o.KlWeight), new TrainerOptions
        {
            LearningRate = o.LearningRate, WarmupSteps = Math.Min(100, o.Steps / 10), MaxGradNorm = 1f, Seed = o.Seed,
            LogPath = Path.Combine(o.OutDir, "train_log.jsonl"), LogEvery = 10,
            CheckpointDir = Path.Combine(o.OutDir, "checkpoints"), CheckpointEvery = o.CheckpointEvery,
            Progress = o.Progress,
        });
        if (trainer.TryResume()) log?.Invoke($"resumed at step {trainer.Step}");
        trainer.Train(o.Steps);

        double psnr = EvalPsnr(vae, data.Images, data.EvalIndices);
        var latents = EncodeMeans(vae, data.Images, data.TrainIndices);
        float scaling = (float)(1.0 / Std(latents.Span));
        latents.Dispose();
        var final = new AutoencoderKL(cfg with { ScalingFactor = scaling });
        final.LoadStateDict(vae.StateDict());
        DiffusersWriter.WriteVae(Path.Combine(o.OutDir, "vae"), final);
        var result = new VaeTrainingResult(psnr, scaling, clock.Elapsed.TotalSeconds, vae.ParameterCount);
        DiffusersWriter.WriteJson(Path.Combine(o.OutDir, "result.json"), new
        {
            eval_psnr_db = psnr, scaling_factor = scaling, seconds = result.Seconds, parameters = result.Parameters,
            steps = o.Steps, batch_size = o.BatchSize, learning_rate = o.LearningRate, kl_weight = o.KlWeight, seed = o.Seed,
        });
        return result;
    }

    /// <summary>Posterior means of the given images, [n, L, h, w] (unscaled), persistent.</summary>
    public static Tensor EncodeMeans(AutoencoderKL vae, Tensor images, int[] indices, int batch = 64)
    {
        using var _ = GradMode.NoGrad();
        Tensor? all = null;
        for (int s = 0; s < indices.Length; s += batch)
        {
            using var scope = TensorScope.Begin();
            var mean = vae.Encode(TwemojiImages.Gather(images, indices.AsSpan(s, Math.Min(batch, indices.Length - s)))).Mean;
            all ??= Tensor.EmptyPersistent([indices.Length, .. mean.ShapeArray()[1..]]);
            for (int b = 0; b < mean.Dim(0); b++) Rows.Copy(mean, b, all, s + b);
        }
        return all!;
    }

    /// <summary>PSNR (dB, images in [0, 1]) of decode(posterior mean) against the images, over all their pixels.</summary>
    public static double EvalPsnr(AutoencoderKL vae, Tensor images, int[] indices, int batch = 64)
    {
        using var _ = GradMode.NoGrad();
        double se = 0; long n = 0;
        for (int s = 0; s < indices.Length; s += batch)
        {
            using var scope = TensorScope.Begin();
            var x = TwemojiImages.Gather(images, indices.AsSpan(s, Math.Min(batch, indices.Length - s)));
            var rec = vae.Decode(vae.Encode(x).Mean);
            var a = x.Span; var r = rec.Span;
            for (int i = 0; i < a.Length; i++)
            {
                double d = (Math.Clamp(r[i], -1f, 1f) - a[i]) / 2.0;
                se += d * d;
            }
            n += a.Length;
        }
        return 10 * Math.Log10(n / se);
    }

    public static double Std(ReadOnlySpan<float> x)
    {
        double s = 0, s2 = 0;
        foreach (var v in x) { s += v; s2 += (double)v * v; }
        double m = s / x.Length;
        return Math.Sqrt(s2 / x.Length - m * m);
    }
}
