// Euler inversion: exact in one iteration for a field constant along the path, converging to the exact inverse of
// the Euler sampler with more fixed-point iterations for a contracting field, stopping early for an expanding one.
using InstaFlow.Flow;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Flow;

public class EulerInversionTests
{
    [Fact]
    public void Invert_FieldConstantInX_OneIterationIsExact()
    {
        using var scope = TensorScope.Begin();
        VelocityFn v = (x, t) => Tensor.Full(1f + (float)t, x.ShapeArray());
        var x0 = TestUtil.Random(1, 3, 5);
        var x1 = new EulerSampler(4).Sample(v, x0).X;
        TestUtil.AssertClose(x0, EulerInversion.Invert(v, x1, 4), 1e-6f, 0, "inverted noise");
    }

    [Fact]
    public void Invert_LinearField_MoreIterationsReachTheEulerInverse()
    {
        using var scope = TensorScope.Begin();
        // v = -0.4 x + t: h * Lip = 0.4 / steps < 1
        VelocityFn v = (x, t) => Ops.AddScalar(Ops.MulScalar(x, -0.4f), (float)t);
        var x0 = TestUtil.Random(2, 4, 7);
        foreach (int steps in new[] { 1, 3 })
        {
            var x1 = new EulerSampler(steps).Sample(v, x0).X;
            float Err(int iterations)
            {
                var back = EulerInversion.Invert(v, x1, steps, iterations).ToArray();
                return back.Zip(x0.ToArray(), (a, b) => MathF.Abs(a - b)).Max();
            }
            float one = Err(1), many = Err(40);
            Assert.True(one > 1e-3f, $"{steps} steps: one iteration should not be exact here ({one})");
            Assert.True(many < 1e-5f, $"{steps} steps: 40 iterations leave max error {many}");
        }
    }

    [Fact]
    public void Invert_DivergingFixedPoint_StopsAtTheFirstEstimate()
    {
        using var scope = TensorScope.Begin();
        // h * Lip = 3: the fixed-point map expands, so further iterates only move further away
        VelocityFn v = (x, t) => Ops.MulScalar(x, -3f);
        var x1 = TestUtil.Random(3, 6);
        var first = EulerInversion.Invert(v, x1, 1, iterations: 1);
        var many = EulerInversion.Invert(v, x1, 1, iterations: 30);
        TestUtil.AssertClose(first, many, 0f, 0, "iterations after a growing change are dropped");
    }
}
