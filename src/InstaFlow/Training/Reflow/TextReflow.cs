// Text-conditioned reflow of an SD UNet on teacher triplets (InstaFlow stage 2): the UNet, initialized from the
// teacher, learns the straight velocity X1 - X0 from (noise, teacher latents, prompt) with the InstaFlow time
// convention, frozen text embeddings cached per prompt, condition dropout for CFG, and EMA. The result is a
// diffusers folder that `instaflow generate` loads as a 2-Rectified-Flow model.
using InstaFlow.Flow;
using InstaFlow.Models;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;
using InstaFlow.Training.Triplets;

namespace InstaFlow.Training.Reflow;

public sealed record TextReflowOptions
{
    public int Steps { get; init; } = 1000;
    public int BatchSize { get; init; } = 4;
    public float LearningRate { get; init; } = 1e-5f;
    public int WarmupSteps { get; init; } = 100;
    public float? EmaDecay { get; init; }
    public float? MaxGradNorm { get; init; } = 1f;
    /// <summary>Probability of replacing a prompt's embedding by the empty prompt's (classifier-free guidance training).</summary>
    public float CondDropout { get; init; } = 0.1f;
    public ulong Seed { get; init; }
    public int CheckpointEvery { get; init; } = 200;
    /// <summary>Start from random weights instead of the teacher's UNet.</summary>
    public bool FromScratch { get; init; }
    /// <summary>Receives a report after every training step (null: none).</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }
    /// <summary>The ranks that train together (null: this process alone); only rank 0 writes files.</summary>
    public Distributed.ICommunicator? World { get; init; }
    /// <summary>Forward/backward passes per rank and step, each on a piece of the batch (gradient accumulation).</summary>
    public int GradAccum { get; init; } = 1;
}

/// <summary>Uniformly sampled triplets as (X0, X1) pairs, conditioned on the cached embedding of each triplet's prompt.</summary>
public sealed class TripletPairs(TripletSet set, Tensor promptEmbeds) : IPairSource
{
    public PairBatch Next(TorchGenerator rng, int batch)
    {
        var shape = set.Noise.ShapeArray(); shape[0] = batch;
        var z0 = Tensor.Empty(shape); var z1 = Tensor.Empty(shape);
        var embShape = promptEmbeds.ShapeArray(); embShape[0] = batch;
        var cond = Tensor.Empty(embShape);
        for (int b = 0; b < batch; b++)
        {
            int k = (int)(rng.NextUInt64() % (ulong)set.Count);
            Rows.Copy(set.Noise, k, z0, b);
            Rows.Copy(set.Latents, k, z1, b);
            Rows.Copy(promptEmbeds, set.PromptIndex[k], cond, b);
        }
        return new PairBatch([z0, z1], cond);
    }
}

public static class TextReflow
{
    /// <summary>Trains (resuming from outDir/checkpoints when present) and writes the student as a diffusers folder in outDir.</summary>
    public static Trainer Run(string teacherDir, string tripletsDir, string promptsPath, string outDir, TextReflowOptions o, Action<string>? log = null) =>
        Run(new ModelSource(teacherDir), tripletsDir, promptsPath, outDir, o, log);

    /// <summary>The same with the teacher from any source: a diffusers folder or a single-file checkpoint (with --config/--ema/--unet).</summary>
    public static Trainer Run(ModelSource teacherSource, string tripletsDir, string promptsPath, string outDir, TextReflowOptions o, Action<string>? log = null)
    {
        if (o.Steps < 1 || o.BatchSize < 1) throw new InvalidInputException($"steps and batch size must be positive (got {o.Steps}, {o.BatchSize})");
        using var teacher = SdComponents.Open(teacherSource);
        using var set = TripletSet.Load(tripletsDir, promptsPath);
        var unet = teacher.Unet;
        if (o.FromScratch) unet.InitDefault(o.Seed);
        if (set.Noise.Dim(1) != unet.Config.InChannels)
            throw new InvalidInputException($"{tripletsDir}: triplets have {set.Noise.Dim(1)} latent channels but the UNet takes {unet.Config.InChannels}");

        // 1. frozen text embeddings, one per prompt, plus the empty prompt as the null condition
        var (embeds, nullEmbed) = EncodePrompts(teacher, set.Prompts);
        log?.Invoke($"{set.Count} triplets, {set.Prompts.Length} prompts; training {unet.ParameterCount / 1e6:F1}M UNet parameters");

        // 2. rectified-flow objective at InstaFlow's convention (network time 1000*(1-t), target X1 - X0)
        var flow = new FlowModel(new DenoiserVelocity(unet), FlowConvention.InstaFlow);
        var objective = new RectifiedFlowObjective(flow, new TripletPairs(set, embeds), new UniformTime(1e-3f), o.BatchSize,
            o.CondDropout > 0 ? new CondDropout(o.CondDropout, nullEmbed) : null);
        Directory.CreateDirectory(outDir);
        var trainer = new Trainer(unet, objective, new TrainerOptions
        {
            LearningRate = o.LearningRate, WarmupSteps = o.WarmupSteps, MaxGradNorm = o.MaxGradNorm, EmaDecay = o.EmaDecay,
            Seed = o.Seed, LogPath = Path.Combine(outDir, "train_log.jsonl"), LogEvery = 10,
            CheckpointDir = Path.Combine(outDir, "checkpoints"), CheckpointEvery = o.CheckpointEvery, Progress = o.Progress,
            World = o.World, GradAccum = o.GradAccum,
        });
        if (trainer.TryResume()) log?.Invoke($"resumed at step {trainer.Step}");

        // 3. train, then 4. write the (EMA) student next to the teacher's other components
        trainer.Train(o.Steps);
        trainer.Ema?.CopyTo();
        if (trainer.World.Rank == 0)
        {
            // a plain folder keeps its files (only the UNet is new); a single file or a replaced UNet is written whole
            if (Directory.Exists(teacherSource.Path) && teacherSource.UnetFile == null && !teacherSource.Ema) DiffusersWriter.WriteWithNewUnet(teacherSource.Path, outDir, unet);
            else ModelConverter.WriteDiffusers(teacher, teacherSource, outDir);
        }
        embeds.Dispose(); nullEmbed.Dispose();
        log?.Invoke($"wrote {outDir} (final loss {trainer.LastLoss:F5})");
        return trainer;
    }

    /// <summary>last_hidden_state for each prompt [P, 77, D] and for the empty prompt [1, 77, D] (persistent).</summary>
    public static (Tensor Embeds, Tensor Null) EncodePrompts(SdComponents model, IReadOnlyList<string> prompts)
    {
        using var ng = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        var rows = prompts.Select(p => model.TextEncoder.Forward(model.Tokenizer.Tokenize(p, model.TextEncoder.Config.MaxPositionEmbeddings).Ids, 1).LastHiddenState).ToArray();
        var all = Ops.Concat(rows, 0).ClonePersistent();
        var nul = model.TextEncoder.Forward(model.Tokenizer.Tokenize("", model.TextEncoder.Config.MaxPositionEmbeddings).Ids, 1).LastHiddenState.ClonePersistent();
        return (all, nul);
    }
}
