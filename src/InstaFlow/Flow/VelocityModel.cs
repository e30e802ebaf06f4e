// The seam between networks and flows: a network maps (x, network time, condition) to a velocity and knows nothing
// of time grids; FlowModel applies a FlowConvention and the guidance rule and turns the network into the field
// dX/dt = v(X, t) that every sampler integrates. Generation, reflow pairs, inversion and straightness all use it.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Flow;

/// <summary>Any network that predicts a velocity: the MLP of the 2D toy, a conv net, the SD UNet.</summary>
public interface IVelocityModel
{
    /// <summary>x: [B, ...], modelTime: [B] (already mapped by the convention), cond: [B, ...] or null.</summary>
    Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond);
}

/// <summary>A velocity field in flow time (0 = noise, 1 = data): returns dX/dt at (x, t) for a batch x. Samplers integrate these.</summary>
public delegate Tensor VelocityFn(Tensor x, double t);

/// <summary>
/// Classifier-free guidance as InstaFlow's pipeline_rf.py (and diffusers' SD pipelines) apply it: on only when the
/// scale is above 1, evaluated as one network call on the batch cat([unconditional, conditional]), then
/// uncond + scale * (cond - uncond). A scale of 1 or less means the plain conditional field.
/// </summary>
public static class Guidance
{
    public static bool IsOn(float scale) => scale > 1f;

    /// <summary>The guided batch's condition: cat([null rows, cond]); a one-row null condition is repeated to cond's batch.</summary>
    public static Tensor PairCondition(Tensor nullCond, Tensor cond)
    {
        int b = cond.Dim(0);
        if (nullCond.Dim(0) != b && nullCond.Dim(0) != 1)
            throw new ArgumentException($"guidance: the null condition {nullCond.Describe()} has neither 1 nor {b} rows for the condition {cond.Describe()}");
        if (!ShapeUtil.SameShape(nullCond.Shape[1..], cond.Shape[1..]))
            throw new ArgumentException($"guidance: the null condition {nullCond.Describe()} and the condition {cond.Describe()} differ in shape");
        var rows = nullCond.Dim(0) == b ? nullCond : Ops.Concat(Enumerable.Repeat(nullCond, b).ToArray(), 0);
        return Ops.Concat([rows, cond], 0);
    }

    /// <summary>output = network(cat([x, x])) under PairCondition -> uncond + scale * (cond - uncond), [batch, ...].</summary>
    public static Tensor Combine(Tensor output, int batch, float scale)
    {
        if (output.Dim(0) != 2 * batch) throw new ArgumentException($"guidance: expected {2 * batch} rows (unconditional then conditional), got {output.Describe()}");
        var uncond = Ops.Narrow(output, 0, 0, batch);
        var cond = Ops.Narrow(output, 0, batch, batch);
        return Ops.Add(uncond, Ops.MulScalar(Ops.Sub(cond, uncond), scale));
    }
}

public sealed class FlowModel(IVelocityModel network, FlowConvention convention)
{
    public IVelocityModel Network { get; } = network;
    public FlowConvention Convention { get; } = convention;

    /// <summary>The raw network output (in its own sign) at per-sample flow times t [B]: what training regresses.</summary>
    public Tensor Predict(Tensor x, Tensor t, Tensor? cond) => Network.Forward(x, Convention.ModelTimes(t), cond);

    /// <summary>dX/dt in flow time (data - noise direction) at one time for the whole batch.</summary>
    public Tensor Velocity(Tensor x, double t, Tensor? cond) => Oriented(Network.Forward(x, Convention.ModelTimes(t, x.Dim(0)), cond));

    private Tensor Oriented(Tensor y) => Convention.OutputSign == 1f ? y : Ops.Neg(y);

    /// <summary>
    /// The field samplers integrate, without gradients: the conditional velocity, or with Guidance.IsOn(guidance) the
    /// classifier-free guided one against nullCond (1 or B rows). Tensors made here belong to the caller's scope.
    /// </summary>
    public VelocityFn Field(Tensor? cond = null, float guidance = 0f, Tensor? nullCond = null)
    {
        if (float.IsNaN(guidance)) throw new InvalidInputException("guidance scale is NaN");
        if (!Guidance.IsOn(guidance))
            return (x, t) =>
            {
                using var _ = GradMode.NoGrad();
                return Velocity(x, t, cond);
            };
        if (cond == null || nullCond == null) throw new ArgumentException($"classifier-free guidance (scale {guidance}) needs both a condition and a null condition");
        Tensor pair;
        using (GradMode.NoGrad()) pair = Guidance.PairCondition(nullCond, cond);
        return (x, t) =>
        {
            using var _ = GradMode.NoGrad();
            var both = Network.Forward(Ops.Concat([x, x], 0), Convention.ModelTimes(t, 2 * x.Dim(0)), pair);
            return Oriented(Guidance.Combine(both, x.Dim(0), guidance));
        };
    }
}
