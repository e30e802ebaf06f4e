// Rectified-flow conventions: X_t = t*X1 + (1-t)*X0 (X0 noise, X1 data), the time value the network is fed, and the
// sign of the velocity it predicts. Everything outside the network works in flow time t in [0, 1] with dX/dt = X1 - X0.
using InstaFlow.Tensors;

namespace InstaFlow.Flow;

/// <summary>How flow time t (0 = noise, 1 = data) is turned into the number the network receives.</summary>
public enum ModelTimeMapping
{
    /// <summary>The network gets t itself.</summary>
    Unit,
    /// <summary>InstaFlow / SD-UNet timesteps: 1000 * (1 - t), so 1000 is pure noise.</summary>
    InstaFlow,
    /// <summary>The RectifiedFlow repository: 999 * t, so 0 is pure noise.</summary>
    RectifiedFlow,
}

/// <summary>Which way the network's velocity points.</summary>
public enum VelocitySign
{
    /// <summary>v = X1 - X0 = data - noise (RectifiedFlow, InstaFlow).</summary>
    DataMinusNoise,
    /// <summary>v = noise - data (SD3-style flow matching).</summary>
    NoiseMinusData,
}

public sealed record FlowConvention(ModelTimeMapping Time = ModelTimeMapping.Unit, VelocitySign Sign = VelocitySign.DataMinusNoise)
{
    public static readonly FlowConvention InstaFlow = new(ModelTimeMapping.InstaFlow, VelocitySign.DataMinusNoise);
    public static readonly FlowConvention RectifiedFlowRepo = new(ModelTimeMapping.RectifiedFlow, VelocitySign.DataMinusNoise);
    // SD3 puts noise at its t = 1 and scales its t by 1000: in our time that is 1000 * (1 - t), like InstaFlow.
    public static readonly FlowConvention Sd3 = new(ModelTimeMapping.InstaFlow, VelocitySign.NoiseMinusData);

    /// <summary>+1 when the network predicts data - noise, -1 when it predicts noise - data.</summary>
    public float OutputSign => Sign == VelocitySign.DataMinusNoise ? 1f : -1f;

    /// <summary>
    /// The network's time value for flow time t, computed in double and rounded once, as pipeline_rf.py's
    /// `(1. - i / N) * 1000.` is a Python float before it becomes a float32 tensor.
    /// </summary>
    public float ModelTime(double t) => Time switch
    {
        ModelTimeMapping.InstaFlow => (float)((1.0 - t) * 1000.0),
        ModelTimeMapping.RectifiedFlow => (float)(999.0 * t),
        _ => (float)t,
    };

    /// <summary>Per-sample flow times [B] mapped to network time values [B].</summary>
    public Tensor ModelTimes(Tensor t)
    {
        var r = Tensor.Empty(t.ShapeArray());
        var src = t.Span; var dst = r.Span;
        for (int i = 0; i < src.Length; i++) dst[i] = ModelTime(src[i]);
        return r;
    }

    /// <summary>Same network time for every one of `batch` samples.</summary>
    public Tensor ModelTimes(double t, int batch) => Tensor.Full(ModelTime(t), batch);

    /// <summary>X_t = X0 + t * (X1 - X0) with per-sample t [B] broadcast over the remaining dims.</summary>
    public static Tensor Interpolate(Tensor x0, Tensor x1, Tensor t) => Ops.Add(x0, Ops.Mul(PerSample(t, x0.Rank), Ops.Sub(x1, x0)));

    /// <summary>The regression target in the network's output space: +-(X1 - X0).</summary>
    public Tensor Target(Tensor x0, Tensor x1) => Sign == VelocitySign.DataMinusNoise ? Ops.Sub(x1, x0) : Ops.Sub(x0, x1);

    /// <summary>Reshapes a [B] tensor to [B, 1, ..., 1] so that it broadcasts against rank-`rank` samples.</summary>
    public static Tensor PerSample(Tensor perRow, int rank)
    {
        var shape = Enumerable.Repeat(1, rank).ToArray();
        shape[0] = perRow.Dim(0);
        return perRow.Reshape(shape);
    }
}
