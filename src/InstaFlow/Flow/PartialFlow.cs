// Rectified-flow image-to-image: instead of starting at pure noise (t = 0), start on the straight path between the
// noise and an encoded image at t = 1 - strength and integrate the same ODE to t = 1 (SDEdit on a rectified flow).
using InstaFlow.Tensors;

namespace InstaFlow.Flow;

public static class PartialFlow
{
    /// <summary>
    /// The state and time the integration starts from: X_t = t * data + (1 - t) * noise at t = 1 - strength, i.e.
    /// strength * noise + (1 - strength) * data. Strength 1 is pure noise at t = 0 (text-to-image), 0 the data at t = 1.
    /// </summary>
    public static (Tensor X, double T) Start(Tensor noise, Tensor data, double strength)
    {
        Check(strength);
        if (!ShapeUtil.SameShape(noise.Shape, data.Shape))
            throw new ArgumentException($"partial flow: noise {noise.Describe()} and data {data.Describe()} differ in shape");
        double t = 1 - strength;
        // Formed as noise * s + data * (1 - s) in float32, so strength 1 gives the noise bit for bit.
        var x = Ops.Add(Ops.MulScalar(noise, (float)strength), Ops.MulScalar(data, (float)t));
        return (x, t);
    }

    /// <summary>
    /// Integrates v with `sampler` from Start(noise, data, strength) over [1 - strength, 1]; the sampler's steps cover that
    /// interval (a one-step model takes one step of length strength). Strength 0 returns a copy of the data.
    /// </summary>
    public static Tensor Run(OdeSampler sampler, VelocityFn v, Tensor noise, Tensor data, double strength, Action<int, double, Tensor>? onStep = null)
    {
        var (x, t0) = Start(noise, data, strength);
        if (strength == 0) return x;
        return sampler.Sample(v, x, t0, 1, onStep: onStep).X;
    }

    public static void Check(double strength)
    {
        if (!(strength >= 0 && strength <= 1)) throw new InvalidInputException($"strength must be between 0 and 1, got {strength}");
    }
}
