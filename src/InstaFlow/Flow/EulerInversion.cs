// Inverts the Euler sampler: the noise that an N-step Euler run of the same field maps onto a given end state, for
// image inversion and editing with straight flows (InstaFlow: z0 = x1 - v(x1, 0) for one step, then refined).
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Flow;

public static class EulerInversion
{
    /// <summary>
    /// From x1 at t1 back to t0 over `steps` uniform steps. The forward step is x' = x + h v(x, t), so each backward
    /// step solves x = x' - h v(x, t) by fixed-point iteration from x = x': the first iterate is x' - h v(x', t) (exact
    /// for a field that is constant along the path, as a straight flow's is); more iterates make the result the exact
    /// inverse of the forward Euler step wherever h Lip(v) &lt; 1 (more steps make h smaller). Iterating stops early once
    /// an iterate moves less than the previous one did not: a growing change means the iteration diverges, and the
    /// last iterate before it is kept. Returns the state at t0 (the caller's scope owns it).
    /// </summary>
    public static Tensor Invert(VelocityFn v, Tensor x1, int steps, int iterations = 1, double t0 = 0, double t1 = 1)
    {
        if (iterations < 1) throw new InvalidInputException($"inversion needs at least 1 fixed-point iteration per step, got {iterations}");
        var grid = OdeSampler.UniformGrid(steps, t0, t1);
        using var _ = GradMode.NoGrad();
        var next = x1;
        for (int i = steps - 1; i >= 0; i--)
        {
            using var scope = TensorScope.Begin();
            // the forward sampler's step size and rounding (EulerSampler): x' = x + fl(h * v)
            float h = (float)((t1 - t0) / steps);
            var x = Ops.Sub(next, Ops.MulScalar(v(next, grid[i]), h));
            double moved = MaxAbsDiff(x, next);
            for (int k = 1; k < iterations && moved > 0; k++)
            {
                var y = Ops.Sub(next, Ops.MulScalar(v(x, grid[i]), h));
                double change = MaxAbsDiff(y, x);
                if (change >= moved) break;
                x = y;
                moved = change;
            }
            next = scope.Keep(x);
        }
        return next;
    }

    private static double MaxAbsDiff(Tensor a, Tensor b)
    {
        var x = a.Span;
        var y = b.Span;
        float m = 0;
        for (int i = 0; i < x.Length; i++) m = MathF.Max(m, MathF.Abs(x[i] - y[i]));
        return m;
    }
}
