// Frechet distance and its eigen-based matrix square root against closed forms: commuting covariances, identical
// distributions, a square root that squares back to its matrix; the symmetric eigensolver on odd and singular matrices.
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

    [Theory]
    [InlineData(1, 37)]
    [InlineData(2, 64)]
    [InlineData(3, 5)]
    public void SymmetricEigen_RandomAndSingular_VectorsOrthonormalAndSatisfyAv(int seed, int n)
    {
        // B B^T / k with k < n samples: symmetric, positive semi-definite, rank k (like an n < d covariance)
        int k = n / 2 + 1;
        var b = TestUtil.RandomArray(seed, n * k);
        var a = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) for (int t = 0; t < k; t++) a[i * n + j] += (double)b[i * k + t] * b[j * k + t] / k;
        var (values, v) = SymmetricEigen.Decompose(a, n);
        double worst = 0;
        for (int p = 0; p < n; p++)
            for (int i = 0; i < n; i++)
            {
                double av = 0, dot = 0;
                for (int j = 0; j < n; j++) { av += a[i * n + j] * v![p * n + j]; dot += v![p * n + j] * v[i * n + j]; }
                worst = Math.Max(worst, Math.Abs(av - values[p] * v![p * n + i]));
                worst = Math.Max(worst, Math.Abs(dot - (p == i ? 1 : 0)));
            }
        Assert.True(worst < 1e-12, $"max |A v - l v| or |V V^T - I| = {worst}");
        Assert.Equal(n - k, values.Count(l => Math.Abs(l) < 1e-12));
        var (valuesOnly, none) = SymmetricEigen.Decompose(a, n, vectors: false);
        Assert.Null(none);
        Assert.Equal(values.Order(), valuesOnly.Order(), (x, y) => Math.Abs(x - y) < 1e-12);
    }
}
