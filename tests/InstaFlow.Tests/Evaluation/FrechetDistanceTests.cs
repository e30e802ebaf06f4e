// Frechet distance and its Jacobi matrix square root against closed forms: commuting covariances, identical
// distributions, and a square root that squares back to its matrix.
using InstaFlow.Evaluation;

namespace InstaFlow.Tests.Evaluation;

public class FrechetDistanceTests
{
    // R diag(e) R^T for a fixed 3x3 rotation: same eigenvectors for both matrices, so they commute and
    // tr (S1 S2)^1/2 = sum sqrt(a_i b_i).
    private static double[] Rotated(double[] e)
    {
        double c = Math.Cos(0.7), s = Math.Sin(0.7), c2 = Math.Cos(-1.1), s2 = Math.Sin(-1.1);
        double[] rz = [c, -s, 0, s, c, 0, 0, 0, 1], rx = [1, 0, 0, 0, c2, -s2, 0, s2, c2];
        var r = Mul(rz, rx);
        var d = new double[9];
        for (int i = 0; i < 3; i++) d[i * 3 + i] = e[i];
        return Mul(Mul(r, d), Transpose(r));
    }

    private static double[] Mul(double[] a, double[] b)
    {
        var r = new double[9];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) for (int k = 0; k < 3; k++) r[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
        return r;
    }

    private static double[] Transpose(double[] a) => [a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]];

    [Fact]
    public void CommutingCovariances_MatchClosedForm()
    {
        double[] a = [4, 1, 0.25], b = [1, 9, 0.25];
        double[] m1 = [1, 2, 3], m2 = [0, 2, 5];
        // |m1 - m2|^2 + sum (sqrt a - sqrt b)^2 = (1 + 0 + 4) + (1 + 4 + 0) = 10
        double fd = FrechetDistance.Compute(m1, Rotated(a), m2, Rotated(b), 3);
        Assert.Equal(10.0, fd, 9);
    }

    [Fact]
    public void SqrtPsd_SquaresBack()
    {
        var s = Rotated([5, 2, 0.1]);
        var r = FrechetDistance.SqrtPsd(s, 3);
        var back = Mul(r, r);
        for (int i = 0; i < 9; i++) Assert.Equal(s[i], back[i], 10);
    }

    [Fact]
    public void SameSamples_GiveZero_AndShiftAddsSquaredDistance()
    {
        var x = TestUtil.RandomArray(3, 200 * 4);
        Assert.Equal(0.0, FrechetDistance.Compute(x, 200, x, 200, 4), 8);
        var shifted = x.Select((v, i) => i % 4 == 1 ? v + 3f : v).ToArray();
        Assert.Equal(9.0, FrechetDistance.Compute(x, 200, shifted, 200, 4), 4);
    }
}
