// Samplers on a linear ODE with a closed-form solution (orders of accuracy, RK45 tolerance) and straightness of
// fields whose trajectories are exactly straight.
using InstaFlow.Flow;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Flow;

public class SamplerTests
{
    // dx/dt = A x with A = [[a, -w], [w, a]]: a damped rotation, x(t) = e^(a t) R(w t) x(0).
    private const float Damp = -0.5f, Omega = 2f;

    private static Tensor Spiral(Tensor x, double t)
    {
        var v = Tensor.EmptyLike(x);
        var s = x.Span; var d = v.Span;
        for (int i = 0; i < s.Length; i += 2)
        {
            d[i] = Damp * s[i] - Omega * s[i + 1];
            d[i + 1] = Omega * s[i] + Damp * s[i + 1];
        }
        return v;
    }

    private static float[] Exact(Tensor x0, float t)
    {
        var s = x0.Span;
        var r = new float[s.Length];
        double g = Math.Exp(Damp * t), c = Math.Cos(Omega * t), sn = Math.Sin(Omega * t);
        for (int i = 0; i < s.Length; i += 2)
        {
            r[i] = (float)(g * (c * s[i] - sn * s[i + 1]));
            r[i + 1] = (float)(g * (sn * s[i] + c * s[i + 1]));
        }
        return r;
    }

    private static double Error(OdeSampler sampler, out int nfe)
    {
        using var scope = TensorScope.Begin();
        var x0 = TestUtil.Random(7, 16, 2);
        var res = sampler.Sample(Spiral, x0);
        nfe = res.Evaluations;
        return TestUtil.MaxAbsDiff(Exact(x0, 1f), res.X.Span);
    }

    // Error ratio between n and 2n steps: 2^order for a method of that order.
    private static void AssertOrder(Func<int, OdeSampler> make, int n, int evaluationsPerStep, double expectedRatio, string name)
    {
        double e1 = Error(make(n), out var nfe), e2 = Error(make(2 * n), out _);
        double ratio = e1 / e2;
        Assert.Equal(n * evaluationsPerStep, nfe);
        Assert.True(Math.Abs(ratio / expectedRatio - 1) < 0.1, $"{name} error ratio {ratio} (errors {e1}, {e2}), expected ~{expectedRatio}");
    }

    [Fact]
    public void Euler_HalvingTheStep_HalvesTheError() => AssertOrder(n => new EulerSampler(n), 40, 1, 2, "Euler");

    [Fact]
    public void Heun_HalvingTheStep_QuartersTheError() => AssertOrder(n => new HeunSampler(n), 20, 2, 4, "Heun");

    [Fact]
    public void DormandPrince_Tolerance_IsMetAndTighterCostsMoreEvaluations()
    {
        double tight = Error(new DormandPrinceSampler(1e-5f, 1e-5f), out var nTight);
        double loose = Error(new DormandPrinceSampler(1e-2f, 1e-2f), out var nLoose);
        Assert.True(tight < 1e-4, $"RK45 at rtol=atol=1e-5: max error {tight} ({nTight} evaluations)");
        Assert.True(loose < 1e-1, $"RK45 at rtol=atol=1e-2: max error {loose} ({nLoose} evaluations)");
        Assert.True(nTight > nLoose, $"tight tolerance used {nTight} evaluations, loose {nLoose}");
    }

    [Fact]
    public void Samplers_KeepTrajectory_ReturnsEveryStateInTimeOrder()
    {
        using var scope = TensorScope.Begin();
        var x0 = TestUtil.Random(3, 4, 2);
        foreach (OdeSampler s in new OdeSampler[] { new EulerSampler(5), new HeunSampler(5), new DormandPrinceSampler() })
        {
            var traj = s.Sample(Spiral, x0, keepTrajectory: true).Trajectory!;
            Assert.Equal(0f, traj.Times[0]);
            Assert.Equal(1f, traj.Times[^1]);
            Assert.Same(x0, traj.States[0]);
            for (int i = 1; i < traj.Times.Count; i++) Assert.True(traj.Times[i] > traj.Times[i - 1]);
        }
    }

    // dx/dt = x / (1 + t) has straight solutions x(t) = (1 + t) x(0), and Euler follows them exactly.
    private static Tensor Dilation(Tensor x, double t) => Ops.MulScalar(x, (float)(1.0 / (1.0 + t)));

    [Fact]
    public void Straightness_StraightField_IsZero()
    {
        using var scope = TensorScope.Begin();
        var x0 = TestUtil.Random(5, 32, 2);
        double s = Straightness.Measure(Dilation, x0, new EulerSampler(10));
        Assert.True(s < 1e-10, $"straightness of a straight field: {s}");
        var traj = new EulerSampler(10).Sample(Dilation, x0, keepTrajectory: true).Trajectory!;
        double maxExtrapolation = Straightness.ExtrapolationErrors(Dilation, traj).Max();
        Assert.True(maxExtrapolation < 1e-10, $"x1-extrapolation error of a straight field: {maxExtrapolation}");
    }

    [Fact]
    public void Straightness_CurvedField_IsPositive()
    {
        using var scope = TensorScope.Begin();
        double s = Straightness.Measure(Spiral, TestUtil.Random(5, 32, 2), new EulerSampler(50));
        Assert.True(s > 0.1, $"straightness of a rotating field should be clearly positive, got {s}");
    }

    [Fact]
    public void Straightness_TransportCost_IsMeanSquaredDisplacement()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.FromArray([0, 0, 1, 1], 2, 2);
        var b = Tensor.FromArray([3, 4, 1, 2], 2, 2);
        Assert.Equal(13.0, Straightness.TransportCost(a, b), 12);
    }
}
