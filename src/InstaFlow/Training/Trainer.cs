// The training loop: AdamW with linear learning-rate warmup and optional cosine decay, optional global-norm gradient
// clipping and EMA, periodic evaluation, JSONL logging, periodic atomic checkpoints and exact resume (all randomness comes from one checkpointed generator),
// data-parallel over a world of ranks and with gradient accumulation (each step's global batch is cut into
// ranks x accumulation pieces; the gradients of the pieces are summed, weighted by their share of the batch).
using System.Diagnostics;
using InstaFlow.Distributed;
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training;

/// <summary>Optimizer, logging, checkpoint and progress settings of a <see cref="Trainer"/>.</summary>
public sealed record TrainerOptions
{
    public float LearningRate { get; init; } = 1e-3f;
    public int WarmupSteps { get; init; }
    /// <summary>
    /// First step of a cosine decay from LearningRate to MinLearningRate, reached at DecayEndStep (null: constant after
    /// warmup). A pure function of the step, so a resumed run follows the same schedule when these are unchanged.
    /// </summary>
    public long? DecayFromStep { get; init; }
    /// <summary>The step at which the decay reaches MinLearningRate (usually the run's total steps).</summary>
    public long DecayEndStep { get; init; }
    public float MinLearningRate { get; init; }

    /// <summary>
    /// Checks a stage's decay options as the CLI names them (--decay-from, --min-lr) before any data is read; the
    /// constructor of <see cref="Trainer"/> checks the resolved schedule again.
    /// </summary>
    public static void ValidateDecay(int steps, float learningRate, int? decayFrom, float? minLearningRate)
    {
        if (decayFrom is int d && (d < 0 || d > steps))
            throw new InvalidInputException($"--decay-from must be a step between 0 and --steps ({steps}), got {d}");
        if (minLearningRate is float m && (!(m >= 0) || m > learningRate))
            throw new InvalidInputException($"--min-lr must be between 0 and --lr ({learningRate:G3}), got {m:G3}");
        if (minLearningRate != null && decayFrom == null) throw new InvalidInputException("--min-lr is the floor of the decay; give --decay-from STEP too");
    }
    public float WeightDecay { get; init; }
    public float? MaxGradNorm { get; init; }
    public float? EmaDecay { get; init; }
    /// <summary>
    /// Resuming a checkpoint saved without EMA while EmaDecay is set starts the average from the resumed weights
    /// (instead of refusing), so a run can switch weight averaging on part-way.
    /// </summary>
    public bool EmaMayStartOnResume { get; init; }
    /// <summary>Seeds the generator behind every random draw of the objective (noise, times, batches, dropout).</summary>
    public ulong Seed { get; init; }
    public string? LogPath { get; init; }
    public int LogEvery { get; init; } = 10;
    public string? CheckpointDir { get; init; }
    /// <summary>Steps between checkpoints (0: only at the end of Train).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Steps between calls of Evaluate (0: never).</summary>
    public int EvalEvery { get; init; }
    /// <summary>
    /// Measures the model after a step (e.g. held-out quality); the named values go to the log as an "eval" entry and
    /// into the progress reports. It must not change the training state (parameters, optimizer, EMA, generator), so that
    /// evaluating leaves the run identical.
    /// </summary>
    public Func<Trainer, IReadOnlyList<(string Name, double Value)>>? Evaluate { get; init; }
    /// <summary>Receives a report after every step (synchronously, on the training thread); null reports nothing.</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }
    /// <summary>
    /// The ranks that train together (null: this process alone). Each computes its share of every global batch; only
    /// rank 0 writes the log and the checkpoints.
    /// </summary>
    public ICommunicator? World { get; init; }
    /// <summary>Pieces each rank cuts its share of the batch into, one forward and backward each (gradient accumulation).</summary>
    public int GradAccum { get; init; } = 1;
    /// <summary>Steps between checks that every rank holds the same parameters, EMA and optimizer state (0: never).</summary>
    public int SyncCheckEvery { get; init; } = 100;
    /// <summary>Floats per all-reduce call when gradients are averaged (small gradients are packed together).</summary>
    public int BucketFloats { get; init; } = 1 << 20;
}

/// <summary>Runs an <see cref="ITrainingObjective"/> with AdamW, logging, checkpoints and progress reports.</summary>
public sealed class Trainer
{
    private readonly Module _module;
    private readonly ITrainingObjective _objective;

    public Trainer(Module module, ITrainingObjective objective, TrainerOptions options)
    {
        if (options.WarmupSteps < 0) throw new InvalidInputException($"warmup steps cannot be negative, got {options.WarmupSteps}");
        if (options.DecayFromStep is long from && (from < 0 || from > options.DecayEndStep))
            throw new InvalidInputException($"the learning-rate decay must start between step 0 and its end step {options.DecayEndStep}, got {from}");
        if (options.MinLearningRate < 0 || options.MinLearningRate > options.LearningRate)
            throw new InvalidInputException($"the learning-rate floor must be between 0 and the learning rate {options.LearningRate:G3}, got {options.MinLearningRate:G3}");
        if (options.EvalEvery < 0) throw new InvalidInputException($"steps between evaluations cannot be negative, got {options.EvalEvery}");
        if (options.GradAccum < 1) throw new InvalidInputException($"gradient accumulation must be at least 1, got {options.GradAccum}");
        World = options.World ?? SingleProcessCommunicator.Instance;
        if (World.Size * options.GradAccum > 1 && objective is not ISplittableObjective)
            throw new InvalidInputException($"{objective.GetType().Name} cannot split its batch, so it cannot train on {World.Size} ranks with gradient accumulation {options.GradAccum}");
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
    public ICommunicator World { get; }
    /// <summary>Wall time spent in the gradient all-reduce since the trainer was made (0 on one rank).</summary>
    public TimeSpan AllReduceTime { get; private set; }
    private bool _synchronized;

    /// <summary>The last evaluation (null before the first), as "name value" pairs for progress details.</summary>
    public IReadOnlyList<(string Name, double Value)>? LastEval { get; private set; }
    public long LastEvalStep { get; private set; }

    /// <summary>
    /// Linear warmup from LearningRate / WarmupSteps to LearningRate over the first WarmupSteps steps; then, from
    /// DecayFromStep, a cosine from LearningRate down to MinLearningRate at DecayEndStep (and the floor after it).
    /// Step is zero-based: the rate the optimizer step number step + 1 uses.
    /// </summary>
    public float LearningRateAt(long step) => LearningRateAt(Options, step);

    /// <inheritdoc cref="LearningRateAt(long)"/>
    public static float LearningRateAt(TrainerOptions o, long step)
    {
        float lr = o.WarmupSteps == 0 ? o.LearningRate : o.LearningRate * Math.Min(1f, (step + 1f) / o.WarmupSteps);
        if (o.DecayFromStep is not long from || step < from) return lr;
        long span = o.DecayEndStep - from;
        double progress = span <= 0 ? 1 : Math.Min(1.0, (double)(step - from) / span);
        float cosine = o.MinLearningRate + (o.LearningRate - o.MinLearningRate) * (float)(0.5 * (1 + Math.Cos(Math.PI * progress)));
        // a decay that starts inside the warmup must not jump above the warming-up rate
        return Math.Min(lr, cosine);
    }

    /// <summary>Resumes from the checkpoint directory when it holds a checkpoint; returns whether it did.</summary>
    public bool TryResume()
    {
        if (Options.CheckpointDir == null || !Checkpoint.Exists(Options.CheckpointDir)) return false;
        var state = Checkpoint.Load(Options.CheckpointDir, _module, Optimizer, Ema, Options.EmaMayStartOnResume);
        Rng.SetState(Convert.FromBase64String(state.RngState));
        Step = state.Step;
        return true;
    }

    /// <summary>Writes a checkpoint (rank 0 only: the other ranks hold the same state).</summary>
    public void SaveCheckpoint()
    {
        if (Options.CheckpointDir == null) throw new InvalidOperationException("SaveCheckpoint: the trainer has no CheckpointDir");
        if (World.Rank != 0) return;
        Checkpoint.Save(Options.CheckpointDir, Step, _module, Optimizer, Ema, Rng.GetState());
    }

    /// <summary>Trains until Step reaches totalSteps (continuing from the current step), checkpointing at the end.</summary>
    public void Train(long totalSteps)
    {
        if (!_synchronized && World.Size > 1) BroadcastState();
        _synchronized = true;
        using var log = new TrainingLog(World.Rank == 0 ? Options.LogPath : null);
        var clock = Stopwatch.StartNew();
        while (Step < totalSteps)
        {
            using (var scope = TensorScope.Begin())
            {
                Optimizer.ZeroGrad();
                OpProfile.MarkCurrent("step", "zero gradients");
                LastLoss = World.Size * Options.GradAccum == 1 ? WholeBatch() : MyPieces();
                OpProfile.MarkCurrent("step", "loss value and all-reduce");
                // a user-facing error (one line in the CLI, no stack trace): the usual cause is too high a learning rate
                if (!float.IsFinite(LastLoss))
                    throw new InvalidInputException($"training diverged at step {Step + 1}: the loss is {LastLoss}; try a lower --lr (this run: {Options.LearningRate:G3}), a longer warmup or gradient clipping, and resume from the last checkpoint");
                float gradScale = Options.MaxGradNorm is float max ? GradClip.Scale(_module.Parameters(), max) : 1f;
                OpProfile.MarkCurrent("step", "gradient norm");
                Optimizer.LearningRate = LearningRateAt(Step);
                // clipping, AdamW and EMA in one pass over the parameters
                Optimizer.Step(gradScale, Ema);
                OpProfile.MarkCurrent("step", "AdamW and EMA");
            }
            OpProfile.MarkCurrent("step", "releasing the step's tensors");
            Step++;
            if (Step % Options.LogEvery == 0 || Step == totalSteps) log.Write(Step, LastLoss, Optimizer.LearningRate, clock.Elapsed.TotalSeconds);
            if (Options.Evaluate != null && Options.EvalEvery > 0 && Step % Options.EvalEvery == 0)
            {
                LastEval = Options.Evaluate(this);
                LastEvalStep = Step;
                log.WriteEval(Step, LastEval, clock.Elapsed.TotalSeconds);
            }
            Options.Progress?.Report(new TrainingProgress(Step, totalSteps, LastLoss, Optimizer.LearningRate, clock.Elapsed) { Eval = EvalNote() });
            if (World.Size > 1 && Options.SyncCheckEvery > 0 && (Step % Options.SyncCheckEvery == 0 || Step == totalSteps)) CheckInSync();
            if (Options.CheckpointDir != null && Options.CheckpointEvery > 0 && Step % Options.CheckpointEvery == 0) SaveCheckpoint();
        }
        if (Options.CheckpointDir != null) SaveCheckpoint();
    }

    private string? EvalNote() => LastEval == null ? null : string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{string.Join(", ", LastEval.Select(e => $"{e.Name} {e.Value:G4}"))} at step {LastEvalStep}");

    private float WholeBatch()
    {
        var loss = _objective.Loss(Rng);
        loss.Backward();
        return loss.Item();
    }

    /// <summary>
    /// Every rank draws the whole global batch (the same random numbers), computes the gradients of its pieces, each
    /// loss weighted by its share of the batch, and the all-reduce sums them: the gradient of the global batch's mean.
    /// </summary>
    private float MyPieces()
    {
        var split = (ISplittableObjective)_objective;
        var rows = split.Draw(Rng);
        int batch = rows[0]!.Dim(0), accum = Options.GradAccum, pieces = World.Size * accum;
        if (batch < pieces)
            throw new InvalidInputException($"a batch of {batch} cannot be cut into {pieces} pieces ({World.Size} ranks x gradient accumulation {accum})");
        Span<float> loss = [0f];
        for (int m = 0; m < accum; m++)
        {
            using var scope = TensorScope.Begin();
            var (start, count) = DataParallel.Piece(batch, pieces, World.Rank * accum + m);
            var piece = split.Loss(rows.Select(r => r == null ? null : Ops.Narrow(r, 0, start, count)).ToArray());
            float weight = (float)count / batch;
            Ops.MulScalar(piece, weight).Backward();
            loss[0] += piece.Item() * weight;
        }
        if (World.Size > 1)
        {
            var clock = Stopwatch.StartNew();
            DataParallel.SumGradients(World, Optimizer.Params, loss, Options.BucketFloats);
            AllReduceTime += clock.Elapsed;
        }
        return loss[0];
    }

    /// <summary>Parameters, EMA, optimizer moments, step and generator state: what must be equal on every rank.</summary>
    private IEnumerable<Tensor> StateTensors() =>
        _module.Parameters().Select(p => p.Value).Concat(Ema?.Shadow ?? []).Concat(Optimizer.State().Select(s => s.Value));

    /// <summary>Every rank takes rank 0's state, so ranks start equal whatever they loaded (or failed to load).</summary>
    private void BroadcastState()
    {
        DataParallel.BroadcastTensors(World, StateTensors());
        var rng = Rng.GetState();
        var head = new byte[8 + rng.Length];
        BitConverter.TryWriteBytes(head, Step);
        rng.CopyTo(head, 8);
        World.Broadcast(head);
        Step = BitConverter.ToInt64(head, 0);
        Rng.SetState(head[8..]);
        Optimizer.LoadState(Optimizer.State().ToDictionary(s => s.Name, s => s.Value), Step);
    }

    private void CheckInSync()
    {
        int differing = DataParallel.CountDiffering(World, StateTensors(), [.. BitConverter.GetBytes(Step), .. Rng.GetState()]);
        if (differing > 0)
            throw new InvalidOperationException($"at step {Step}, {differing} of {World.Size} ranks hold parameters, EMA or optimizer state that differ from rank 0's; stopping the job");
    }
}
