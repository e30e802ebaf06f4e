// ODE samplers for dX/dt = v(X, t): fixed-grid Euler (InstaFlow's sampler) and Heun, and adaptive Dormand-Prince RK45
// (rtol/atol). Each reports its number of velocity evaluations (NFE), can keep the whole trajectory and reports every
// accepted step. Time is double so the grid is InstaFlow's exactly: t_i = i/N, network time (1 - t_i) * 1000.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Flow;

/// <summary>States visited by a sampler, in time order (the first is the start, the last the end).</summary>
public sealed record Trajectory(IReadOnlyList<double> Times, IReadOnlyList<Tensor> States);

/// <summary>End state, velocity evaluations used, and the trajectory when requested. Tensors belong to the caller's scope.</summary>
public sealed record SampleResult(Tensor X, int Evaluations, Trajectory? Trajectory);

public abstract class OdeSampler
{
    /// <summary>
    /// Integrates from x0 at time t0 to t1; x0 is not modified. onStep(k, t, x) sees each accepted state (k counts from
    /// 0) and may throw to stop the run (a cancelled generation).
    /// </summary>
    public SampleResult Sample(VelocityFn v, Tensor x0, double t0 = 0, double t1 = 1, bool keepTrajectory = false, Action<int, double, Tensor>? onStep = null)
    {
        if (!(t1 > t0)) throw new ArgumentException($"sampler: end time {t1} must be after start time {t0}");
        using var _ = GradMode.NoGrad();
        var times = new List<double> { t0 };
        var states = new List<Tensor> { x0 };
        var x = x0;
        int step = 0;
        int nfe = Integrate(v, x0, t0, t1, (t, next) =>
        {
            if (keepTrajectory) { times.Add(t); states.Add(next); }
            else if (!ReferenceEquals(x, x0)) x.Dispose();
            x = next;
            onStep?.Invoke(step++, t, next);
        });
        return new SampleResult(x, nfe, keepTrajectory ? new Trajectory(times, states) : null);
    }

    /// <summary>Runs the method, handing each accepted state (owned by the caller's scope) to accept; returns NFE.</summary>
    protected abstract int Integrate(VelocityFn v, Tensor x0, double t0, double t1, Action<double, Tensor> accept);

    /// <summary>y + h * sum(c_i * k_i) in one pass, as a new tensor.</summary>
    protected static Tensor Combine(Tensor y, double h, ReadOnlySpan<double> coef, ReadOnlySpan<Tensor> k)
    {
        var r = y.Clone();
        for (int i = 0; i < k.Length; i++)
            if (coef[i] != 0) Ops.AxpyInPlace(r, (float)(h * coef[i]), k[i]);
        return r;
    }

    /// <summary>n equal steps between t0 and t1 (n + 1 points): t0 + (t1 - t0) * i / n, so [0, 1] gives i / n exactly.</summary>
    public static double[] UniformGrid(int steps, double t0 = 0, double t1 = 1)
    {
        if (steps < 1) throw new InvalidInputException($"a sampler needs at least 1 step, got {steps}");
        var g = new double[steps + 1];
        for (int i = 0; i <= steps; i++) g[i] = t0 + (t1 - t0) * i / steps;
        return g;
    }
}

/// <summary>One-step methods on a uniform grid of Steps steps between t0 and t1.</summary>
public abstract class FixedGridSampler(int steps) : OdeSampler
{
    public int Steps { get; } = steps;
    protected abstract int EvaluationsPerStep { get; }

    /// <summary>The state at t + h from x at t.</summary>
    protected abstract Tensor Step(VelocityFn v, Tensor x, double t, double h);

    protected override int Integrate(VelocityFn v, Tensor x0, double t0, double t1, Action<double, Tensor> accept)
    {
        var grid = UniformGrid(Steps, t0, t1);
        // one step size for the whole grid, as pipeline_rf.py's dt = 1 / N
        double h = (t1 - t0) / Steps;
        var x = x0;
        for (int i = 0; i < Steps; i++)
        {
            using var scope = TensorScope.Begin();
            var next = scope.Keep(Step(v, x, grid[i], h));
            accept(grid[i + 1], next);
            x = next;
        }
        return Steps * EvaluationsPerStep;
    }
}

/// <summary>
/// Explicit Euler, InstaFlow's sampler (one step: InstaFlow; N steps: 2-Rectified Flow): x + dt * v(x, t), rounded
/// as PyTorch rounds `latents + dt * v_pred` (the product, then the sum), so the latents match the reference bit for bit.
/// </summary>
public sealed class EulerSampler(int steps) : FixedGridSampler(steps)
{
    protected override int EvaluationsPerStep => 1;
    protected override Tensor Step(VelocityFn v, Tensor x, double t, double h) => Ops.Add(x, Ops.MulScalar(v(x, t), (float)h));
}

/// <summary>Heun's method (explicit trapezoid): two evaluations per step, second order.</summary>
public sealed class HeunSampler(int steps) : FixedGridSampler(steps)
{
    protected override int EvaluationsPerStep => 2;

    protected override Tensor Step(VelocityFn v, Tensor x, double t, double h)
    {
        var k1 = v(x, t);
        var k2 = v(Combine(x, h, [1.0], [k1]), t + h);
        return Combine(x, h, [0.5, 0.5], [k1, k2]);
    }
}

/// <summary>
/// Adaptive Dormand-Prince 5(4) with first-same-as-last reuse. A step is accepted when the RMS of
/// err / (atol + rtol * max(|y|, |y_new|)) is at most 1 (the norm SciPy's RK45 uses).
/// </summary>
public sealed class DormandPrinceSampler(float rtol = 1e-5f, float atol = 1e-5f, int maxSteps = 10000) : OdeSampler
{
    public float RTol { get; } = rtol;
    public float ATol { get; } = atol;
    public int MaxSteps { get; } = maxSteps;

    private static readonly double[] C = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1];
    private static readonly double[][] A =
    [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
        [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84],
    ];
    // 5th-order weights (= last row of A) minus the embedded 4th-order weights: the local error estimate.
    private static readonly double[] E =
        [35.0 / 384 - 5179.0 / 57600, 0, 500.0 / 1113 - 7571.0 / 16695, 125.0 / 192 - 393.0 / 640,
         -2187.0 / 6784 + 92097.0 / 339200, 11.0 / 84 - 187.0 / 2100, -1.0 / 40];

    protected override int Integrate(VelocityFn v, Tensor x0, double t0, double t1, Action<double, Tensor> accept)
    {
        var x = x0;
        double t = t0, h = Math.Min(0.05, t1 - t0);
        var k1 = v(x0, t0);
        int nfe = 1, steps = 0;
        var k = new Tensor[7];
        while (t < t1)
        {
            if (++steps > MaxSteps) throw new InvalidOperationException($"RK45 took more than {MaxSteps} steps (rtol {RTol}, atol {ATol}); the field may be stiff or non-finite");
            h = Math.Min(h, t1 - t);
            var scope = TensorScope.Begin();
            k[0] = k1;
            Tensor y = x;
            for (int s = 1; s < 7; s++)
            {
                y = Combine(x, h, A[s], k.AsSpan(0, s));
                k[s] = v(y, t + C[s] * h);
            }
            nfe += 6;
            // The last stage is evaluated at the 5th-order solution itself, so y is the candidate next state.
            double norm = ErrorNorm(Combine(Tensor.ZerosLike(x), h, E, k), x, y);
            if (norm <= 1)
            {
                t = t1 - t <= h * (1 + 1e-6) ? t1 : t + h;
                scope.Keep(y);
                k1.Dispose();
                k1 = scope.Keep(k[6]);
                scope.Dispose();
                accept(t, y);
                x = y;
            }
            else scope.Dispose();
            // Standard controller for a 5th-order pair, limited so one bad estimate cannot collapse or explode h.
            double factor = norm == 0 ? 10 : Math.Clamp(0.9 * Math.Pow(norm, -0.2), 0.2, 10);
            h *= norm <= 1 ? factor : Math.Min(1, factor);
        }
        k1.Dispose();
        return nfe;
    }

    private unsafe double ErrorNorm(Tensor err, Tensor y0, Tensor y1)
    {
        float* e = err.Data, a = y0.Data, b = y1.Data;
        double acc = 0;
        for (long i = 0; i < err.Numel; i++)
        {
            double sc = ATol + RTol * Math.Max(Math.Abs(a[i]), Math.Abs(b[i]));
            double r = e[i] / sc;
            acc += r * r;
        }
        return Math.Sqrt(acc / err.Numel);
    }
}
