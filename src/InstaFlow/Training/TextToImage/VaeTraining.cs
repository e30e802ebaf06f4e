// Stage 0 of the Twemoji recipe: a small AutoencoderKL trained from scratch (L2 reconstruction + a small KL term), with
// optional cosine learning-rate decay, EMA and held-out PSNR every N steps; its reconstruction PSNR on the eval split,
// and scaling_factor = 1 / std of the latents written into its config.
using InstaFlow.Models;
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;
using InstaFlow.Tensors.Kernels;

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
    /// <summary>Linear warmup steps (null: min(100, Steps / 10), the value before this option existed).</summary>
    public int? WarmupSteps { get; init; }
    /// <summary>First step of the cosine decay to MinLearningRate at Steps (null: constant learning rate after warmup).</summary>
    public int? DecayFrom { get; init; }
    /// <summary>Learning rate at the end of the decay (null: LearningRate / 10).</summary>
    public float? MinLearningRate { get; init; }
    /// <summary>EMA decay of the exported weights (null: none, the raw weights are exported).</summary>
    public float? EmaDecay { get; init; }
    /// <summary>Steps between held-out PSNR measurements during training (0: only at the end).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Receives a report after every training step (null: none).</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }

    /// <summary>The warmup actually used.</summary>
    public int Warmup => WarmupSteps ?? Math.Min(100, Steps / 10);

    /// <summary>Throws InvalidInputException naming the `train vae` option that is out of range.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new InvalidInputException($"--steps must be at least 1, got {Steps}");
        if (BatchSize < 1) throw new InvalidInputException($"--batch must be at least 1, got {BatchSize}");
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate)) throw new InvalidInputException($"--lr must be a positive number, got {LearningRate}");
        if (WarmupSteps < 0) throw new InvalidInputException($"--warmup cannot be negative, got {WarmupSteps}");
        if (CheckpointEvery < 0) throw new InvalidInputException($"--checkpoint-every cannot be negative (0: only at the end), got {CheckpointEvery}");
        if (EvalEvery < 0) throw new InvalidInputException($"--eval-every cannot be negative (0: only at the end), got {EvalEvery}");
        TrainerOptions.ValidateDecay(Steps, LearningRate, DecayFrom, MinLearningRate);
        if (EmaDecay is float e && !(e > 0 && e < 1)) throw new InvalidInputException($"--ema must be between 0 and 1 (exclusive), e.g. 0.999, got {e}");
    }
}

/// <param name="EvalPsnr">Held-out PSNR of the exported weights (the EMA weights when EMA is on).</param>
/// <param name="ScalingFactor">1 / std of the training images' latent means, written into the config.</param>
/// <param name="Seconds">Wall time of this invocation.</param>
/// <param name="Parameters">Parameter count of the VAE.</param>
/// <param name="LivePsnr">With EMA, held-out PSNR of the raw (not averaged) weights; otherwise null.</param>
public sealed record VaeTrainingResult(double EvalPsnr, float ScalingFactor, double Seconds, long Parameters, double? LivePsnr = null);

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
        o.Validate();
        var clock = Stopwatch.StartNew();
        var data = TwemojiImages.Load(o.DataDir);
        if (data.EvalIndices.Length == 0) throw new InvalidInputException($"{o.DataDir}: the dataset has no held-out (split eval) images to measure PSNR on");
        int size = data.Images.Dim(2);
        var cfg = new AutoencoderKLConfig
        {
            BlockOutChannels = o.BlockOutChannels, LayersPerBlock = o.LayersPerBlock, NormNumGroups = o.NormNumGroups,
            LatentChannels = 4, SampleSize = size,
        };
        var vae = new AutoencoderKL(cfg);
        vae.InitDefault(o.Seed);
        Directory.CreateDirectory(o.OutDir);
        // EMA weights are measured in a second model, so evaluating never touches the training state
        AutoencoderKL? averaged = o.EmaDecay != null ? new AutoencoderKL(cfg) : null;
        var trainer = new Trainer(vae, new VaeObjective(vae, data.Images, data.TrainIndices, o.BatchSize, o.KlWeight), new TrainerOptions
        {
            LearningRate = o.LearningRate, WarmupSteps = o.Warmup, MaxGradNorm = 1f, Seed = o.Seed,
            DecayFromStep = o.DecayFrom, DecayEndStep = o.Steps, MinLearningRate = o.DecayFrom == null ? 0f : o.MinLearningRate ?? o.LearningRate / 10,
            EmaDecay = o.EmaDecay, EmaMayStartOnResume = true,
            LogPath = Path.Combine(o.OutDir, "train_log.jsonl"), LogEvery = 10,
            CheckpointDir = Path.Combine(o.OutDir, "checkpoints"), CheckpointEvery = o.CheckpointEvery,
            EvalEvery = o.EvalEvery, Evaluate = t => Measure(vae, averaged, t.Ema, data),
            Progress = o.Progress,
        });
        bool hadEma = Checkpoint.Exists(Path.Combine(o.OutDir, "checkpoints")) && Checkpoint.ReadState(Path.Combine(o.OutDir, "checkpoints")).HasEma;
        if (trainer.TryResume())
            log?.Invoke(o.EmaDecay != null && !hadEma ? $"resumed at step {trainer.Step}; EMA starts from the resumed weights" : $"resumed at step {trainer.Step}");
        trainer.Train(o.Steps);

        double? livePsnr = null;
        if (trainer.Ema != null)
        {
            livePsnr = EvalPsnr(vae, data.Images, data.EvalIndices);
            // export the averaged weights, as the flow stages do (training is over, the live weights are not needed)
            trainer.Ema.CopyTo();
        }
        // The folder holds F16 weights: round them first, so that the PSNR and the scaling factor are the shipped VAE's
        // (the flow stages encode their latents with the F16 folder too). Training is over; nothing reads F32 after this.
        foreach (var (_, p) in vae.NamedParameters())
            foreach (ref var v in p.Value.Span) v = HalfConvert.F16ToF32Scalar(HalfConvert.F32ToF16Scalar(v));
        double psnr = EvalPsnr(vae, data.Images, data.EvalIndices);
        var latents = EncodeMeans(vae, data.Images, data.TrainIndices);
        float scaling = (float)(1.0 / Std(latents.Span));
        latents.Dispose();
        var final = new AutoencoderKL(cfg with { ScalingFactor = scaling });
        final.LoadStateDict(vae.StateDict());
        DiffusersWriter.WriteVae(Path.Combine(o.OutDir, "vae"), final);
        var result = new VaeTrainingResult(psnr, scaling, clock.Elapsed.TotalSeconds, vae.ParameterCount, livePsnr);
        DiffusersWriter.WriteJson(Path.Combine(o.OutDir, "result.json"), new
        {
            eval_psnr_db = psnr, eval_psnr_live_db = livePsnr, scaling_factor = scaling, seconds = result.Seconds, parameters = result.Parameters,
            steps = o.Steps, batch_size = o.BatchSize, learning_rate = o.LearningRate, warmup_steps = o.Warmup,
            decay_from = o.DecayFrom, min_learning_rate = o.DecayFrom == null ? (float?)null : o.MinLearningRate ?? o.LearningRate / 10,
            ema_decay = o.EmaDecay, kl_weight = o.KlWeight, seed = o.Seed,
        });
        return result;
    }

    /// <summary>
    /// Held-out PSNR of the weights that would be exported now: "psnr_db" (the EMA weights, copied into averaged, when
    /// there is an EMA; else the live ones) and, with EMA, "psnr_live_db" of the live weights.
    /// </summary>
    private static IReadOnlyList<(string, double)> Measure(AutoencoderKL live, AutoencoderKL? averaged, Nn.Ema? ema, TwemojiImages data)
    {
        double livePsnr = EvalPsnr(live, data.Images, data.EvalIndices);
        if (ema == null || averaged == null) return [("psnr_db", livePsnr)];
        int i = 0;
        foreach (var p in averaged.Parameters()) p.Value.CopyFrom(ema.Shadow[i++]);
        return [("psnr_db", EvalPsnr(averaged, data.Images, data.EvalIndices)), ("psnr_live_db", livePsnr)];
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
