// Stages 1-4 of the Twemoji InstaFlow recipe on cached VAE latents: text-conditioned 1-RF (text encoder and UNet from
// scratch), reflow pairs from the guided 1-RF ODE, 2-RF on those pairs, and one-step distillation of 2-RF.
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Models;
using InstaFlow.Nn;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Training.Data;

namespace InstaFlow.Training.TextToImage;

/// <summary>What every training stage shares: data, output, optimisation and seed.</summary>
public sealed record StageOptions
{
    public required string DataDir { get; init; }
    public required string OutDir { get; init; }
    public int Steps { get; init; } = 1000;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 5e-4f;
    public int WarmupSteps { get; init; } = 100;
    public float? EmaDecay { get; init; } = 0.998f;
    public ulong Seed { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>First step of a cosine decay of the learning rate to MinLearningRate at Steps (null: constant after warmup).</summary>
    public int? DecayFrom { get; init; }
    /// <summary>The decay's floor (null: LearningRate / 10); only with DecayFrom.</summary>
    public float? MinLearningRate { get; init; }
    /// <summary>Steps between held-out measurements (0: none); only stages that have one (1-RF: the held-out loss).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Receives a report after every training step (null: none).</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }
    /// <summary>The ranks that train together (null: this process alone); only rank 0 writes files.</summary>
    public Distributed.ICommunicator? World { get; init; }
    /// <summary>Forward/backward passes per rank and step, each on a piece of the batch (gradient accumulation).</summary>
    public int GradAccum { get; init; } = 1;
    /// <summary>How the 1-RF draws its training images (the later stages draw stored pairs, made with their own rule).</summary>
    public CaptionSampling Sampling { get; init; } = CaptionSampling.PerImage;
}

/// <summary>Architecture of the from-scratch text encoder and UNet (the latent size comes from the VAE).</summary>
public sealed record FlowArchitecture
{
    public int TextHidden { get; init; } = 64;
    public int TextLayers { get; init; } = 2;
    public int TextHeads { get; init; } = 4;
    /// <summary>Prompt length in tokens (with start and end tokens): Twemoji names are short.</summary>
    public int MaxTokens { get; init; } = 16;
    public int[] UnetChannels { get; init; } = [32, 64, 64];
    public int UnetHeads { get; init; } = 4;
    public int NormGroups { get; init; } = 8;

    /// <summary>Bounds the sizes before any network is allocated (the CLI's --channels, --text-hidden, --text-layers).</summary>
    public void Validate()
    {
        if (UnetChannels.Length is < 1 or > 6) throw new InvalidInputException($"--channels takes 1 to 6 levels, got {UnetChannels.Length}");
        foreach (int c in UnetChannels)
            if (c < NormGroups || c > 2048 || c % NormGroups != 0 || c % UnetHeads != 0)
                throw new InvalidInputException($"--channels: each level must be {NormGroups}..2048 and a multiple of {NormGroups} groups and {UnetHeads} heads, got {c}");
        if (TextHidden < 8 || TextHidden > 1024 || TextHidden % TextHeads != 0)
            throw new InvalidInputException($"--text-hidden must be 8..1024 and a multiple of {TextHeads} heads, got {TextHidden}");
        if (TextLayers is < 1 or > 24) throw new InvalidInputException($"--text-layers must be 1..24, got {TextLayers}");
        if (MaxTokens is < 3 or > 77) throw new InvalidInputException($"--max-tokens must be 3..77, got {MaxTokens}");
    }
}

public sealed record StageResult(string ModelDir, double Seconds, float FinalLoss, long Parameters);

/// <summary>Stages 1-4 of the Twemoji recipe; each trains with StageOptions.Progress reports and writes OutDir/model.</summary>
public static class TextToImageTraining
{
    public const float ConditionDropout = 0.1f;

    /// <summary>1-RF: independent (noise, latent) couplings, caption dropout 0.1 for classifier-free guidance.</summary>
    public static StageResult TrainFlow(StageOptions o, string vaeDir, string tokenizerDir, FlowArchitecture a, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        var data = TwemojiImages.Load(o.DataDir);
        var vae = LoadVae(vaeDir);
        var tokenizer = ClipTokenizer.FromDirectory(tokenizerDir);
        var captions = CaptionTable.Build(data.Items, data.TrainIndices, tokenizer, a.MaxTokens);
        var latents = VaeTraining.EncodeMeans(vae, data.Images, data.TrainIndices);
        foreach (ref var v in latents.Span) v *= vae.Config.ScalingFactor;
        // latent rows follow TrainIndices; map each caption to its row
        var rowOfItem = new Dictionary<int, int>();
        for (int r = 0; r < data.TrainIndices.Length; r++) rowOfItem[data.TrainIndices[r]] = r;
        log?.Invoke($"encoded {latents.Dim(0)} training images to latents {ShapeUtil.Format(latents.Shape)}, {captions.Length} captions, {clock.Elapsed.TotalSeconds:F0} s");

        var net = NewNetwork(a, vae.Config, tokenizer.VocabSize, o.Seed);
        int[] shape = latents.ShapeArray()[1..];
        var pairs = new IndependentCoupling(shape, (rng, b) =>
        {
            var caps = captions.DrawCaptions(rng, b, o.Sampling);
            return (TwemojiImages.Gather(latents, caps.Select(c => rowOfItem[captions.Items[c]]).ToArray()), captions.Lookup(caps));
        });
        if (o.Sampling == CaptionSampling.PerEmoji) log?.Invoke($"drawing each of {captions.Emojis.Length} emojis equally often ({data.TrainIndices.Length} images)");
        var flow = new FlowModel(net, FlowConvention.InstaFlow);
        var objective = new RectifiedFlowObjective(flow, pairs, new UniformTime(), o.BatchSize, new CondDropout(ConditionDropout, captions.NullIds));
        var heldOut = o.EvalEvery > 0 ? HeldOutFlowLoss.Create(data, vae, tokenizer, a, net, o.Seed) : null;
        return TrainAndWrite(net, vae, tokenizerDir, objective, o, "1-rf", clock, log, (25, 2f), heldOut == null ? null : t => heldOut.Measure(t));
    }

    /// <summary>The from-scratch networks: CLIP text encoder (real CLIP vocabulary) and cross-attention UNet.</summary>
    public static TextToImageVelocity NewNetwork(FlowArchitecture a, AutoencoderKLConfig vae, int vocabSize, ulong seed)
    {
        var text = new ClipTextModel(new ClipTextConfig
        {
            VocabSize = vocabSize, HiddenSize = a.TextHidden, IntermediateSize = 4 * a.TextHidden, NumHiddenLayers = a.TextLayers,
            NumAttentionHeads = a.TextHeads, MaxPositionEmbeddings = a.MaxTokens,
        });
        int levels = a.UnetChannels.Length;
        var unet = new UNet2DConditionModel(new UNet2DConditionConfig
        {
            SampleSize = vae.SampleSize / vae.ScaleFactor, InChannels = vae.LatentChannels, OutChannels = vae.LatentChannels,
            BlockOutChannels = a.UnetChannels, LayersPerBlock = 1, NormNumGroups = a.NormGroups, CrossAttentionDim = a.TextHidden,
            AttentionHeads = Enumerable.Repeat(a.UnetHeads, levels).ToArray(), TransformerLayersPerBlock = Enumerable.Repeat(1, levels).ToArray(),
            // cross-attention on every level but the coarsest, as SD 1.5 does
            DownBlockTypes = Enumerable.Range(0, levels).Select(i => i < levels - 1 ? "CrossAttnDownBlock2D" : "DownBlock2D").ToArray(),
            UpBlockTypes = Enumerable.Range(0, levels).Select(i => i == 0 ? "UpBlock2D" : "CrossAttnUpBlock2D").ToArray(),
        });
        var net = new TextToImageVelocity(text, unet);
        net.InitDefault(seed);
        return net;
    }

    public static AutoencoderKL LoadVae(string vaeDir)
    {
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(vaeDir, "config.json")));
        StateDictLoader.Load(vae, Path.Combine(vaeDir, "diffusion_pytorch_model.safetensors"), AutoencoderKL.RenameLegacyKey);
        vae.SetRequiresGrad(false);
        return vae;
    }

    /// <summary>A trained stage's folder as a velocity network (trainable), with its VAE and tokenizer.</summary>
    public static (TextToImageVelocity Net, SdComponents Parts) LoadNetwork(string modelDir)
    {
        var parts = SdComponents.Load(modelDir, precision: WeightPrecision.Float32);
        parts.Vae.SetRequiresGrad(false);
        return (new TextToImageVelocity(parts.TextEncoder, parts.Unet), parts);
    }

    /// <summary>
    /// Reflow pairs: (noise, ODE end, caption index) from the model's ODE, deterministic per pair index. The ODE is the
    /// one `generate` solves (the pipeline's field on encoded captions, guidance on above 1, Euler): a pair's end state
    /// is the latents `generate` makes from the same noise and caption. Captions are drawn as sampling says, from the
    /// pair's own condition seed.
    /// </summary>
    public static PairGenerator PairGeneratorFor(string modelDir, string dataDir, int eulerSteps, float guidance, ulong seed, int batchSize,
        CaptionSampling sampling = CaptionSampling.PerImage)
    {
        var parts = SdComponents.Load(modelDir);
        var captions = TrainCaptions(dataDir, parts);
        var encoder = (ClipPromptEncoder)parts.PromptEncoder;
        Tensor Encode(Tensor ids)
        {
            using var _ = Tensors.Autograd.GradMode.NoGrad();
            return encoder.EncodeIds(ids.ToArray().Select(v => (int)v).ToArray(), ids.Dim(0));
        }
        var nullContext = Encode(captions.NullIds).ClonePersistent();
        var shape = new[] { parts.Unet.Config.InChannels, parts.Unet.Config.SampleSize, parts.Unet.Config.SampleSize };
        return new PairGenerator(new FlowModel(new DenoiserVelocity(parts.Denoiser), FlowConvention.InstaFlow), new EulerSampler(eulerSteps), shape, seed,
            batchSize: batchSize, conditions: new PairConditions(captions.Length, idx => Encode(captions.Lookup(idx)), guidance, nullContext,
                // PerImage keeps the rule pairs were always made with (every caption equally often), so existing shards stay valid
                sampling == CaptionSampling.PerEmoji ? s => captions.DrawCaptions(new Tensors.Random.TorchGenerator(s), 1, sampling)[0] : null,
                sampling == CaptionSampling.PerEmoji ? "per-emoji" : PairConditions.Uniform));
    }

    /// <summary>The training captions as the model's tokenizer and prompt length encode them (pairs index into this).</summary>
    public static CaptionTable TrainCaptions(string dataDir, SdComponents parts)
    {
        var items = TwemojiDataset.Load(dataDir);
        var train = Enumerable.Range(0, items.Count).Where(i => !items[i].IsEval).ToArray();
        return CaptionTable.Build(items, train, parts.Tokenizer, parts.TextEncoder.Config.MaxPositionEmbeddings);
    }

    /// <summary>k-RF: the rectified-flow loss on stored pairs, starting from the model that made them (or another).</summary>
    public static StageResult TrainReflow(StageOptions o, string modelDir, string pairsDir, float dropout, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        var (net, parts) = LoadNetwork(modelDir);
        var captions = TrainCaptions(o.DataDir, parts);
        var pairs = new StoredPairs(PairShards.Load(pairsDir), captions.Lookup);
        var flow = new FlowModel(net, FlowConvention.InstaFlow);
        var objective = new RectifiedFlowObjective(flow, pairs, new UniformTime(), o.BatchSize, dropout > 0 ? new CondDropout(dropout, captions.NullIds) : null);
        return TrainAndWrite(net, parts.Vae, Path.Combine(modelDir, "tokenizer"), objective, o, "reflow", clock, log, (4, 0f));
    }

    /// <summary>
    /// One-step distillation (k = 1) of the model that made the pairs: L2 on latents, or, given LPIPS weights, LPIPS
    /// on the decoded images (InstaFlow runs L2 first, then continues from that model with LPIPS).
    /// </summary>
    public static StageResult TrainDistill(StageOptions o, string modelDir, string pairsDir, Action<string>? log = null, string[]? lpipsWeights = null)
    {
        var clock = Stopwatch.StartNew();
        var (net, parts) = LoadNetwork(modelDir);
        var captions = TrainCaptions(o.DataDir, parts);
        var pairs = new StoredPairs(PairShards.Load(pairsDir), captions.Lookup);
        DistillationLoss? loss = null;
        if (lpipsWeights is { Length: > 0 })
        {
            var (lpips, report) = Models.Lpips.Lpips.Load(lpipsWeights);
            log?.Invoke($"LPIPS loss on decoded images: VGG16 taps {string.Join(", ", lpips.TapChannels)} channels ({report.Source})");
            loss = new LpipsLatentLoss(parts.Vae, lpips).Loss;
        }
        var objective = new DistillationObjective(new FlowModel(net, FlowConvention.InstaFlow), pairs, [0f, 1f], o.BatchSize, loss);
        return TrainAndWrite(net, parts.Vae, Path.Combine(modelDir, "tokenizer"), objective, o, loss == null ? "distill" : "distill-lpips", clock, log, (1, 0f));
    }

    /// <summary>Trains, then writes the model folder with the steps and guidance the stage's model is meant for
    /// (1-RF: 25 guided steps, as its pairs are made; 2-RF: 4 steps; distilled: 1 step).</summary>
    private static StageResult TrainAndWrite(TextToImageVelocity net, AutoencoderKL vae, string tokenizerDir, ITrainingObjective objective,
        StageOptions o, string label, Stopwatch clock, Action<string>? log,
        (int Steps, float Guidance) defaults, Func<Trainer, IReadOnlyList<(string Name, double Value)>>? evaluate = null)
    {
        Directory.CreateDirectory(o.OutDir);
        float? minLr = o.DecayFrom == null ? null : o.MinLearningRate ?? o.LearningRate / 10;
        var trainer = new Trainer(net, objective, new TrainerOptions
        {
            LearningRate = o.LearningRate, WarmupSteps = Math.Min(o.WarmupSteps, o.Steps), MaxGradNorm = 1f, EmaDecay = o.EmaDecay, Seed = o.Seed,
            DecayFromStep = o.DecayFrom, DecayEndStep = o.Steps, MinLearningRate = minLr ?? 0f,
            LogPath = Path.Combine(o.OutDir, "train_log.jsonl"), LogEvery = 10,
            CheckpointDir = Path.Combine(o.OutDir, "checkpoints"), CheckpointEvery = o.CheckpointEvery,
            Progress = o.Progress, World = o.World, GradAccum = o.GradAccum,
            EvalEvery = evaluate == null ? 0 : o.EvalEvery, Evaluate = evaluate,
        });
        if (trainer.TryResume()) log?.Invoke($"resumed at step {trainer.Step}");
        trainer.Train(o.Steps);
        trainer.Ema?.CopyTo();
        var modelDir = Path.Combine(o.OutDir, "model");
        var result = new StageResult(modelDir, clock.Elapsed.TotalSeconds, trainer.LastLoss, net.ParameterCount);
        if (trainer.World.Rank != 0) return result;
        DiffusersWriter.WritePipeline(modelDir, net.Text, net.Unet, vae, tokenizerDir, defaults: defaults);
        DiffusersWriter.WriteJson(Path.Combine(o.OutDir, "result.json"), new
        {
            // a run that only finishes a resumed checkpoint takes no step and has no loss of its own
            stage = label, seconds = result.Seconds, final_loss = float.IsFinite(result.FinalLoss) ? result.FinalLoss : (float?)null, parameters = result.Parameters,
            steps = o.Steps, batch_size = o.BatchSize, ranks = trainer.World.Size, grad_accum = o.GradAccum, learning_rate = o.LearningRate,
            decay_from = o.DecayFrom, min_learning_rate = minLr, ema_decay = o.EmaDecay, seed = o.Seed,
            caption_sampling = label == "1-rf" ? o.Sampling.ToString() : null,
        });
        return result;
    }
}
