// Frechet distance between two Gaussians fitted to feature sets: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with
// the matrix square root from symmetric eigen-decompositions in double (pytorch-fid's value without its complex sqrtm).
namespace InstaFlow.Evaluation;

public static class FrechetDistance
{
    /// <summary>Features are [n, d] row-major; both sets need at least two rows.</summary>
    public static double Compute(float[] a, int na, float[] b, int nb, int d) =>
        Compute(Array.ConvertAll(a, v => (double)v), na, Array.ConvertAll(b, v => (double)v), nb, d);

    public static double Compute(double[] a, int na, double[] b, int nb, int d)
    {
        var (m1, s1) = MeanCov(a, na, d);
        var (m2, s2) = MeanCov(b, nb, d);
        return Compute(m1, s1, m2, s2, d);
    }

    public static double Compute(double[] m1, double[] s1, double[] m2, double[] s2, int d)
    {
        double diff = 0;
        for (int i = 0; i < d; i++) diff += (m1[i] - m2[i]) * (m1[i] - m2[i]);
        // tr (S1 S2)^1/2 = tr (S1^1/2 S2 S1^1/2)^1/2, and the inner matrix is symmetric positive semi-definite
        var r = SqrtPsd(s1, d);
        var inner = MatMul(MatMul(r, s2, d), r, d);
        var (eig, _) = SymmetricEigen.Decompose(inner, d, vectors: false);
        double trSqrt = eig.Sum(e => Math.Sqrt(Math.Max(e, 0)));
        double tr = 0;
        for (int i = 0; i < d; i++) tr += s1[i * d + i] + s2[i * d + i];
        return diff + tr - 2 * trSqrt;
    }

    /// <summary>Mean and unbiased covariance (d x d, row-major) of n rows of d features.</summary>
    public static (double[] Mean, double[] Cov) MeanCov(double[] x, int n, int d)
    {
        if (x.Length != (long)n * d) throw new ArgumentException($"{x.Length} values are not {n} rows of {d} features");
        if (n < 2) throw new InvalidInputException($"a covariance needs at least two samples, got {n}");
        var m = new double[d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) m[j] += x[(long)i * d + j];
        for (int j = 0; j < d; j++) m[j] /= n;
        var c = new double[d * d];
        // centred blocks of rows stay in cache while every covariance row takes its share; each element still sums
        // over samples in order, so the result does not depend on the thread count
        const int Block = 64;
        var block = new double[Block * d];
        for (int start = 0; start < n; start += Block)
        {
            int rows = Math.Min(Block, n - start);
            for (int r = 0; r < rows; r++)
                for (int k = 0; k < d; k++) block[r * d + k] = x[(long)(start + r) * d + k] - m[k];
            Tensors.Par.For(d, j =>
            {
                var cj = c.AsSpan(j * d, d);
                for (int r = 0; r < rows; r++)
                {
                    double bj = block[r * d + j];
                    var br = block.AsSpan(r * d, d);
                    for (int k = j; k < d; k++) cj[k] += bj * br[k];
                }
            });
        }
        for (int j = 0; j < d; j++)
            for (int k = j; k < d; k++) c[k * d + j] = c[j * d + k] /= n - 1;
        return (m, c);
    }

    /// <summary>The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding clip to 0).</summary>
    public static double[] SqrtPsd(double[] s, int d)
    {
        var (eig, v) = SymmetricEigen.Decompose(s, d);
        // R = sum_k sqrt(l_k) v_k v_k^T, with the eigenvectors v_k as the rows of v
        var scaled = new double[d * d];
        for (int k = 0; k < d; k++)
        {
            double e = Math.Sqrt(Math.Max(eig[k], 0));
            for (int j = 0; j < d; j++) scaled[k * d + j] = e * v![k * d + j];
        }
        return MatMul(v!, scaled, d, transposeX: true);
    }

    // x y (or x^T y) for d x d row-major matrices; rows of the result in parallel, each summed in a fixed order.
    private static double[] MatMul(double[] x, double[] y, int d, bool transposeX = false)
    {
        var r = new double[d * d];
        Tensors.Par.For(d, i =>
        {
            var row = r.AsSpan(i * d, d);
            for (int k = 0; k < d; k++)
            {
                double xik = transposeX ? x[k * d + i] : x[i * d + k];
                if (xik == 0) continue;
                var yk = y.AsSpan(k * d, d);
                for (int j = 0; j < d; j++) row[j] += xik * yk[j];
            }
        });
        return r;
    }
}
