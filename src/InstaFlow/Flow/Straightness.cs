// Straightness S(Z) = int_0^1 E||(Z1 - Z0) - v(Z_t, t)||^2 dt (Liu et al. 2023, eq. 5), the x1-extrapolation error
// E||Z_t + (1 - t) v(Z_t, t) - Z1||^2 and the transport cost E||Z1 - Z0||^2, estimated on sampled trajectories.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Flow;

public static class Straightness
{
    /// <summary>
    /// S on one trajectory: a left Riemann sum over its time points (exact for piecewise-constant velocity, i.e. for
    /// Euler trajectories, whose velocities are the ones re-evaluated here).
    /// </summary>
    public static double Estimate(VelocityFn v, Trajectory traj)
    {
        RequireSpan(traj);
        using var _ = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        var chord = Ops.Sub(traj.States[^1], traj.States[0]);
        double s = 0;
        for (int i = 0; i + 1 < traj.Times.Count; i++)
        {
            using var step = TensorScope.Begin();
            s += (traj.Times[i + 1] - traj.Times[i]) * MeanSquaredDistance(chord, v(traj.States[i], traj.Times[i]));
        }
        return s / (traj.Times[^1] - traj.Times[0]);
    }

    /// <summary>Samples a trajectory from x0 with the given sampler and estimates S on it.</summary>
    public static double Measure(VelocityFn v, Tensor x0, OdeSampler sampler)
    {
        using var scope = TensorScope.Begin();
        return Estimate(v, sampler.Sample(v, x0, keepTrajectory: true).Trajectory!);
    }

    /// <summary>E||Z_t + (1 - t) v(Z_t, t) - Z1||^2 at every point of the trajectory but the last (t = 1 is trivially 0).</summary>
    public static double[] ExtrapolationErrors(VelocityFn v, Trajectory traj)
    {
        RequireSpan(traj);
        using var _ = GradMode.NoGrad();
        var r = new double[traj.Times.Count - 1];
        for (int i = 0; i < r.Length; i++)
        {
            using var scope = TensorScope.Begin();
            double t = traj.Times[i];
            var guess = Ops.Add(traj.States[i], Ops.MulScalar(v(traj.States[i], t), (float)(traj.Times[^1] - t)));
            r[i] = MeanSquaredDistance(guess, traj.States[^1]);
        }
        return r;
    }

    /// <summary>E||Z1 - Z0||^2 over the batch.</summary>
    public static double TransportCost(Tensor z0, Tensor z1) => MeanSquaredDistance(z0, z1);

    /// <summary>Squared Euclidean distance per sample (summed over all non-batch dims), averaged over the batch.</summary>
    public static double MeanSquaredDistance(Tensor a, Tensor b)
    {
        if (!ShapeUtil.SameShape(a.Shape, b.Shape)) throw new ArgumentException($"MeanSquaredDistance: shapes {a.Describe()} and {b.Describe()} differ");
        var x = a.Span; var y = b.Span;
        double acc = 0;
        for (int i = 0; i < x.Length; i++) { double d = x[i] - y[i]; acc += d * d; }
        return acc / a.Dim(0);
    }

    private static void RequireSpan(Trajectory traj)
    {
        if (traj.Times.Count < 2) throw new ArgumentException("straightness needs a trajectory with at least two points");
    }
}
