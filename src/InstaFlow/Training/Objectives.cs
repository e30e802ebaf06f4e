// Training objectives on couplings (Z0, Z1): the rectified-flow regression (1-RF on independent pairs, k-RF on
// reflowed pairs) and k-step distillation, with classifier-free-guidance dropout of the condition.
using InstaFlow.Flow;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training;

/// <summary>A scalar loss (with gradients) for one optimizer step.</summary>
public interface ITrainingObjective
{
    Tensor Loss(TorchGenerator rng);
}

/// <summary>
/// An objective whose global batch can be split by samples, for data-parallel training and gradient accumulation.
/// Draw takes every random number of the step (so each rank, drawing from the same generator state, sees the same
/// global batch) and Loss(Draw(rng)) equals Loss(rng).
/// </summary>
public interface ISplittableObjective : ITrainingObjective
{
    /// <summary>The step's whole batch as tensors whose first dimension is the sample (entries may be null).</summary>
    Tensor?[] Draw(TorchGenerator rng);

    /// <summary>The mean loss over the samples of <paramref name="rows"/>: Draw's tensors, or the same rows of each.</summary>
    Tensor Loss(Tensor?[] rows);
}

/// <summary>Compares a predicted state with its target; L2 by default, pluggable so perceptual losses (LPIPS) fit.</summary>
public delegate Tensor DistillationLoss(Tensor predicted, Tensor target);

public static class Losses
{
    /// <summary>Mean over all elements of (a - b)^2.</summary>
    public static Tensor Mse(Tensor a, Tensor b) => Ops.MeanAll(Ops.Square(Ops.Sub(a, b)));
}

/// <summary>Replaces each sample's condition by the null condition with probability p (for classifier-free guidance).</summary>
public sealed class CondDropout
{
    public CondDropout(float probability, Tensor nullCond)
    {
        if (probability is < 0 or > 1) throw new InvalidInputException($"condition dropout probability must be in [0, 1], got {probability}");
        Probability = probability; NullCond = nullCond;
    }

    public float Probability { get; }
    /// <summary>One sample's null condition, shaped like a single row of the condition batch (a leading 1 is allowed).</summary>
    public Tensor NullCond { get; }

    public Tensor Apply(Tensor cond, TorchGenerator rng)
    {
        long row = cond.Numel / cond.Dim(0);
        if (NullCond.Numel != row) throw new ArgumentException($"null condition {NullCond.Describe()} does not match one row of the condition {cond.Describe()}");
        var r = cond.Clone();
        for (int b = 0; b < cond.Dim(0); b++)
            if (rng.NextFloat() < Probability) NullCond.Span.CopyTo(r.Span.Slice((int)(b * row), (int)row));
        return r;
    }
}

/// <summary>E || network(X_t, t, c) - target(Z0, Z1) ||^2 with t from the time sampler: the rectified-flow loss.</summary>
public sealed class RectifiedFlowObjective(FlowModel flow, IPairSource pairs, TimeSampler times, int batchSize, CondDropout? dropout = null) : ISplittableObjective
{
    public Tensor Loss(TorchGenerator rng) => Loss(Draw(rng));

    /// <summary>[z0, z1, t, condition after dropout].</summary>
    public Tensor?[] Draw(TorchGenerator rng)
    {
        var batch = pairs.Next(rng, batchSize);
        var t = times.Sample(rng, batchSize);
        var cond = batch.Cond != null && dropout != null ? dropout.Apply(batch.Cond, rng) : batch.Cond;
        return [batch.Points[0], batch.Points[^1], t, cond];
    }

    public Tensor Loss(Tensor?[] rows)
    {
        Tensor z0 = rows[0]!, z1 = rows[1]!, t = rows[2]!;
        var pred = flow.Predict(FlowConvention.Interpolate(z0, z1, t), t, rows[3]);
        return Losses.Mse(pred, flow.Convention.Target(z0, z1));
    }
}

/// <summary>
/// k-step distillation on a grid 0 = t_0 &lt; ... &lt; t_k = 1: each sample picks a segment i, and the student's
/// Euler step from the teacher's state at t_i must land on the teacher's state at t_{i+1}. With k = 1 this is the
/// InstaFlow one-step generator: loss(Z0 + v(Z0, 0), Z1).
/// </summary>
public sealed class DistillationObjective : ISplittableObjective
{
    private readonly FlowModel _student;
    private readonly IPairSource _pairs;
    private readonly float[] _grid;
    private readonly int _batchSize;
    private readonly DistillationLoss _loss;
    private readonly CondDropout? _dropout;

    public DistillationObjective(FlowModel student, IPairSource pairs, float[] grid, int batchSize, DistillationLoss? loss = null, CondDropout? dropout = null)
    {
        if (grid.Length < 2 || grid[0] != 0f || grid[^1] != 1f) throw new InvalidInputException("distillation grid must run from 0 to 1 with at least one segment");
        _student = student; _pairs = pairs; _grid = grid; _batchSize = batchSize; _loss = loss ?? Losses.Mse; _dropout = dropout;
    }

    public Tensor Loss(TorchGenerator rng) => Loss(Draw(rng));

    /// <summary>[start state, target state, start time, signed step, condition after dropout].</summary>
    public Tensor?[] Draw(TorchGenerator rng)
    {
        var batch = _pairs.Next(rng, _batchSize);
        if (batch.Points.Length != _grid.Length)
            throw new InvalidInputException($"distillation on a {_grid.Length - 1}-step grid needs pairs with {_grid.Length} states, got {batch.Points.Length}");
        int k = _grid.Length - 1;
        var start = Tensor.EmptyLike(batch.Points[0]);
        var target = Tensor.EmptyLike(batch.Points[0]);
        var t = Tensor.Empty(_batchSize);
        var dt = Tensor.Empty(_batchSize);
        for (int b = 0; b < _batchSize; b++)
        {
            int i = k == 1 ? 0 : (int)(rng.NextUInt64() % (ulong)k);
            Rows.Copy(batch.Points[i], b, start, b);
            Rows.Copy(batch.Points[i + 1], b, target, b);
            t.Span[b] = _grid[i];
            dt.Span[b] = (_grid[i + 1] - _grid[i]) * _student.Convention.OutputSign;
        }
        var cond = batch.Cond != null && _dropout != null ? _dropout.Apply(batch.Cond, rng) : batch.Cond;
        return [start, target, t, dt, cond];
    }

    public Tensor Loss(Tensor?[] rows)
    {
        Tensor start = rows[0]!, target = rows[1]!;
        var step = Ops.Mul(FlowConvention.PerSample(rows[3]!, start.Rank), _student.Predict(start, rows[2]!, rows[4]));
        return _loss(Ops.Add(start, step), target);
    }
}
