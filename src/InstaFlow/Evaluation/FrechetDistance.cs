// Frechet distance between two Gaussians fitted to feature sets: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with
// the matrix square root from a symmetric eigen-decomposition (cyclic Jacobi, in double).
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
        var (eig, _) = Jacobi(inner, d);
        double trSqrt = eig.Sum(e => Math.Sqrt(Math.Max(e, 0)));
        double tr = 0;
        for (int i = 0; i < d; i++) tr += s1[i * d + i] + s2[i * d + i];
        return diff + tr - 2 * trSqrt;
    }

    /// <summary>Mean and unbiased covariance (d x d, row-major) of n rows of d features.</summary>
    public static (double[] Mean, double[] Cov) MeanCov(double[] x, int n, int d)
    {
        if (x.Length != (long)n * d) throw new ArgumentException($"{x.Length} values are not {n} rows of {d} features");
        if (n < 2) throw new ArgumentException($"a covariance needs at least two samples, got {n}");
        var m = new double[d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) m[j] += x[i * d + j];
        for (int j = 0; j < d; j++) m[j] /= n;
        var c = new double[d * d];
        var row = new double[d];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < d; j++) row[j] = x[i * d + j] - m[j];
            for (int j = 0; j < d; j++) for (int k = 0; k < d; k++) c[j * d + k] += row[j] * row[k];
        }
        for (int j = 0; j < d * d; j++) c[j] /= n - 1;
        return (m, c);
    }

    /// <summary>The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding clip to 0).</summary>
    public static double[] SqrtPsd(double[] s, int d)
    {
        var (eig, v) = Jacobi(s, d);
        var r = new double[d * d];
        for (int k = 0; k < d; k++)
        {
            double e = Math.Sqrt(Math.Max(eig[k], 0));
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) r[i * d + j] += v[i * d + k] * e * v[j * d + k];
        }
        return r;
    }

    /// <summary>Eigenvalues and eigenvectors (columns of V) of a symmetric matrix by cyclic Jacobi rotations.</summary>
    public static (double[] Values, double[] Vectors) Jacobi(double[] s, int d)
    {
        var a = (double[])s.Clone();
        var v = new double[d * d];
        for (int i = 0; i < d; i++) v[i * d + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, total = 0;
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { total += a[i * d + j] * a[i * d + j]; if (i != j) off += a[i * d + j] * a[i * d + j]; }
            if (off <= 1e-30 * Math.Max(total, 1e-300)) break;
            for (int p = 0; p < d - 1; p++)
                for (int q = p + 1; q < d; q++)
                {
                    double apq = a[p * d + q];
                    if (apq == 0) continue;
                    double theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), sn = t * c;
                    for (int k = 0; k < d; k++)
                    {
                        double akp = a[k * d + p], akq = a[k * d + q];
                        a[k * d + p] = c * akp - sn * akq;
                        a[k * d + q] = sn * akp + c * akq;
                    }
                    for (int k = 0; k < d; k++)
                    {
                        double apk = a[p * d + k], aqk = a[q * d + k];
                        a[p * d + k] = c * apk - sn * aqk;
                        a[q * d + k] = sn * apk + c * aqk;
                    }
                    for (int k = 0; k < d; k++)
                    {
                        double vkp = v[k * d + p], vkq = v[k * d + q];
                        v[k * d + p] = c * vkp - sn * vkq;
                        v[k * d + q] = sn * vkp + c * vkq;
                    }
                }
        }
        var values = new double[d];
        for (int i = 0; i < d; i++) values[i] = a[i * d + i];
        return (values, v);
    }

    private static double[] MatMul(double[] x, double[] y, int d)
    {
        var r = new double[d * d];
        for (int i = 0; i < d; i++)
            for (int k = 0; k < d; k++)
            {
                double xik = x[i * d + k];
                for (int j = 0; j < d; j++) r[i * d + j] += xik * y[k * d + j];
            }
        return r;
    }
}
