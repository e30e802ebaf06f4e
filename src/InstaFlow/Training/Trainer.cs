// The training loop: AdamW with linear learning-rate warmup, optional global-norm gradient clipping and EMA,
// JSONL logging, periodic atomic checkpoints and exact resume (all randomness comes from one checkpointed generator).
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training;

/// <summary>Optimizer, logging, checkpoint and progress settings of a <see cref="Trainer"/>.</summary>
public sealed record TrainerOptions
{
    public float LearningRate { get; init; } = 1e-3f;
    public int WarmupSteps { get; init; }
    public float WeightDecay { get; init; }
    public float? MaxGradNorm { get; init; }
    public float? EmaDecay { get; init; }
    /// <summary>Seeds the generator behind every random draw of the objective (noise, times, batches, dropout).</summary>
    public ulong Seed { get; init; }
    public string? LogPath { get; init; }
    public int LogEvery { get; init; } = 10;
    public string? CheckpointDir { get; init; }
    /// <summary>Steps between checkpoints (0: only at the end of Train).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Receives a report after every step (synchronously, on the training thread); null reports nothing.</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }
}

/// <summary>Runs an <see cref="ITrainingObjective"/> with AdamW, logging, checkpoints and progress reports.</summary>
public sealed class Trainer
{
    private readonly Module _module;
    private readonly ITrainingObjective _objective;

    public Trainer(Module module, ITrainingObjective objective, TrainerOptions options)
    {
        if (options.WarmupSteps < 0) throw new InvalidInputException($"warmup steps cannot be negative, got {options.WarmupSteps}");
        _module = module; _objective = objective; Options = options;
        Optimizer = new AdamW(module.Parameters(), options.LearningRate) { WeightDecay = options.WeightDecay };
        Ema = options.EmaDecay is float d ? new Ema(module.Parameters(), d) : null;
        Rng = new TorchGenerator(options.Seed);
    }

    public TrainerOptions Options { get; }
    public AdamW Optimizer { get; }
    public Ema? Ema { get; }
    public TorchGenerator Rng { get; }
    public long Step { get; private set; }
    public float LastLoss { get; private set; } = float.NaN;

    /// <summary>Linear warmup from LearningRate / WarmupSteps to LearningRate over the first WarmupSteps steps.</summary>
    public float LearningRateAt(long step) =>
        Options.WarmupSteps == 0 ? Options.LearningRate : Options.LearningRate * Math.Min(1f, (step + 1f) / Options.WarmupSteps);

    /// <summary>Resumes from the checkpoint directory when it holds a checkpoint; returns whether it did.</summary>
    public bool TryResume()
    {
        if (Options.CheckpointDir == null || !Checkpoint.Exists(Options.CheckpointDir)) return false;
        var state = Checkpoint.Load(Options.CheckpointDir, _module, Optimizer, Ema);
        Rng.SetState(Convert.FromBase64String(state.RngState));
        Step = state.Step;
        return true;
    }

    public void SaveCheckpoint()
    {
        if (Options.CheckpointDir == null) throw new InvalidOperationException("SaveCheckpoint: the trainer has no CheckpointDir");
        Checkpoint.Save(Options.CheckpointDir, Step, _module, Optimizer, Ema, Rng.GetState());
    }

    /// <summary>Trains until Step reaches totalSteps (continuing from the current step), checkpointing at the end.</summary>
    public void Train(long totalSteps)
    {
        using var log = new TrainingLog(Options.LogPath);
        var clock = Stopwatch.StartNew();
        while (Step < totalSteps)
        {
            using (var scope = TensorScope.Begin())
            {
                Optimizer.ZeroGrad();
                var loss = _objective.Loss(Rng);
                loss.Backward();
                LastLoss = loss.Item();
                if (!float.IsFinite(LastLoss)) throw new InvalidOperationException($"training diverged: loss {LastLoss} at step {Step}");
                if (Options.MaxGradNorm is float max) GradClip.ClipGlobalNorm(_module.Parameters(), max);
                Optimizer.LearningRate = LearningRateAt(Step);
                Optimizer.Step();
                Ema?.Update();
            }
            Step++;
            if (Step % Options.LogEvery == 0 || Step == totalSteps) log.Write(Step, LastLoss, Optimizer.LearningRate, clock.Elapsed.TotalSeconds);
            Options.Progress?.Report(new TrainingProgress(Step, totalSteps, LastLoss, Optimizer.LearningRate, clock.Elapsed));
            if (Options.CheckpointDir != null && Options.CheckpointEvery > 0 && Step % Options.CheckpointEvery == 0) SaveCheckpoint();
        }
        if (Options.CheckpointDir != null) SaveCheckpoint();
    }
}
