// The seam between networks and flows: a network maps (x, network time, condition) to a velocity and knows nothing
// of time grids; FlowModel applies a FlowConvention and turns the network into a field dX/dt = v(X, t) for samplers.
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Flow;

/// <summary>Any network that predicts a velocity: the MLP of the 2D toy, a conv net, the SD UNet.</summary>
public interface IVelocityModel
{
    /// <summary>x: [B, ...], modelTime: [B] (already mapped by the convention), cond: [B, ...] or null.</summary>
    Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond);

    Module Module { get; }
}

/// <summary>A velocity field in flow time: returns dX/dt at (x, t) for a batch x. Samplers integrate these.</summary>
public delegate Tensor VelocityFn(Tensor x, float t);

public sealed class FlowModel(IVelocityModel network, FlowConvention convention)
{
    public IVelocityModel Network { get; } = network;
    public FlowConvention Convention { get; } = convention;

    /// <summary>The raw network output (in its own sign) at per-sample flow times t [B]: what training regresses.</summary>
    public Tensor Predict(Tensor x, Tensor t, Tensor? cond) => Network.Forward(x, Convention.ModelTimes(t), cond);

    /// <summary>dX/dt in flow time (data - noise direction) at one time for the whole batch.</summary>
    public Tensor Velocity(Tensor x, float t, Tensor? cond)
    {
        var y = Network.Forward(x, Convention.ModelTimes(t, x.Dim(0)), cond);
        return Convention.OutputSign == 1f ? y : Ops.Neg(y);
    }

    /// <summary>
    /// The field samplers integrate, without gradients. With guidance w != 1 and a null condition it is
    /// classifier-free guided: v_null + w * (v_cond - v_null).
    /// </summary>
    public VelocityFn Field(Tensor? cond = null, float guidance = 1f, Tensor? nullCond = null)
    {
        if (guidance != 1f && (cond == null || nullCond == null))
            throw new ArgumentException("classifier-free guidance needs both a condition and a null condition");
        return (x, t) =>
        {
            using var _ = GradMode.NoGrad();
            var vc = Velocity(x, t, cond);
            if (guidance == 1f) return vc;
            var vu = Velocity(x, t, nullCond);
            return Ops.Add(vu, Ops.MulScalar(Ops.Sub(vc, vu), guidance));
        };
    }
}
