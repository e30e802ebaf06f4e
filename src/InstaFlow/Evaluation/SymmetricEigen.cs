// Eigen-decomposition of a real symmetric matrix in double: Householder reduction to tridiagonal form, then the
// implicit QL iteration with Wilkinson-style shifts (the EISPACK tred2/tql2 scheme). O(n^3) with contiguous inner
// loops, so 2048 x 2048 covariances take seconds where cyclic Jacobi took many minutes.
namespace InstaFlow.Evaluation;

public static class SymmetricEigen
{
    /// <summary>
    /// Eigenvalues (ascending is not guaranteed) and, when vectors is set, the eigenvectors as the rows of an n x n
    /// row-major matrix (row k belongs to value k). a: n x n row-major, symmetric; it is not modified.
    /// </summary>
    public static (double[] Values, double[]? Vectors) Decompose(double[] a, int n, bool vectors = true)
    {
        if (a.Length != (long)n * n) throw new ArgumentException($"{a.Length} values are not a {n} x {n} matrix");
        // u holds the transpose of the working matrix V of tred2/tql2, so that every inner loop runs along a row
        var u = (double[])a.Clone();
        var d = new double[n];
        var e = new double[n];
        if (n == 0) return (d, vectors ? u : null);
        Tridiagonalize(u, n, d, e, vectors);
        QlImplicit(u, n, d, e, vectors);
        return (d, vectors ? u : null);
    }

    // On return d is the diagonal and e[1..] the subdiagonal of the tridiagonal form; with vectors, u^T is the
    // orthogonal matrix that produced it.
    private static void Tridiagonalize(double[] u, int n, double[] d, double[] e, bool vectors)
    {
        for (int j = 0; j < n; j++) d[j] = u[j * n + n - 1];
        for (int i = n - 1; i > 0; i--)
        {
            double scale = 0, h = 0;
            for (int k = 0; k < i; k++) scale += Math.Abs(d[k]);
            if (scale == 0)
            {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++) { d[j] = u[j * n + i - 1]; u[j * n + i] = 0; u[i * n + j] = 0; }
            }
            else
            {
                // Householder vector that zeroes row i left of the subdiagonal
                for (int k = 0; k < i; k++) { d[k] /= scale; h += d[k] * d[k]; }
                double f = d[i - 1], g = Math.Sqrt(h);
                if (f > 0) g = -g;
                e[i] = scale * g;
                h -= f * g;
                d[i - 1] = f - g;
                Array.Clear(e, 0, i);
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    u[i * n + j] = f;
                    g = e[j] + u[j * n + j] * f;
                    int row = j * n;
                    for (int k = j + 1; k < i; k++) { g += u[row + k] * d[k]; e[k] += u[row + k] * f; }
                    e[j] = g;
                }
                f = 0;
                for (int j = 0; j < i; j++) { e[j] /= h; f += e[j] * d[j]; }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) e[j] -= hh * d[j];
                for (int j = 0; j < i; j++)
                {
                    f = d[j]; g = e[j];
                    int row = j * n;
                    for (int k = j; k < i; k++) u[row + k] -= f * e[k] + g * d[k];
                    d[j] = u[row + i - 1];
                    u[row + i] = 0;
                }
            }
            d[i] = h;
        }
        if (vectors)
        {
            // accumulate the reflections into an orthogonal matrix (stored transposed in u)
            for (int i = 0; i < n - 1; i++)
            {
                u[i * n + n - 1] = u[i * n + i];
                u[i * n + i] = 1;
                double h = d[i + 1];
                int next = (i + 1) * n;
                if (h != 0)
                {
                    for (int k = 0; k <= i; k++) d[k] = u[next + k] / h;
                    for (int j = 0; j <= i; j++)
                    {
                        double g = 0;
                        int row = j * n;
                        for (int k = 0; k <= i; k++) g += u[next + k] * u[row + k];
                        for (int k = 0; k <= i; k++) u[row + k] -= g * d[k];
                    }
                }
                for (int k = 0; k <= i; k++) u[next + k] = 0;
            }
            for (int j = 0; j < n; j++) { d[j] = u[j * n + n - 1]; u[j * n + n - 1] = 0; }
            u[(n - 1) * n + n - 1] = 1;
        }
        else
            for (int j = 0; j < n; j++) d[j] = u[j * n + j];
        e[0] = 0;
    }

    private static void QlImplicit(double[] u, int n, double[] d, double[] e, bool vectors)
    {
        for (int i = 1; i < n; i++) e[i - 1] = e[i];
        e[n - 1] = 0;
        double shiftSum = 0, tst1 = 0, eps = Math.Pow(2, -52);
        for (int l = 0; l < n; l++)
        {
            // find the first negligible subdiagonal element at or after l
            tst1 = Math.Max(tst1, Math.Abs(d[l]) + Math.Abs(e[l]));
            int m = l;
            while (m < n - 1 && Math.Abs(e[m]) > eps * tst1) m++;
            if (m > l)
            {
                int iterations = 0;
                do
                {
                    if (++iterations > 100) throw new InvalidOperationException($"symmetric eigen-decomposition did not converge ({n} x {n} matrix, non-finite values?)");
                    double g = d[l], p = (d[l + 1] - g) / (2 * e[l]), r = double.Hypot(p, 1);
                    if (p < 0) r = -r;
                    d[l] = e[l] / (p + r);
                    d[l + 1] = e[l] * (p + r);
                    double dl1 = d[l + 1], h = g - d[l];
                    for (int i = l + 2; i < n; i++) d[i] -= h;
                    shiftSum += h;
                    p = d[m];
                    double c = 1, c2 = 1, c3 = 1, el1 = e[l + 1], s = 0, s2 = 0;
                    for (int i = m - 1; i >= l; i--)
                    {
                        c3 = c2; c2 = c; s2 = s;
                        g = c * e[i]; h = c * p;
                        r = double.Hypot(p, e[i]);
                        e[i + 1] = s * r;
                        s = e[i] / r; c = p / r;
                        p = c * d[i] - s * g;
                        d[i + 1] = h + s * (c * g + s * d[i]);
                        if (vectors) Rotate(u, n, i, c, s);
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] = s * p;
                    d[l] = c * p;
                } while (Math.Abs(e[l]) > eps * tst1);
            }
            d[l] += shiftSum;
            e[l] = 0;
        }
    }

    // Plane rotation of rows i and i + 1 of u (columns of the eigenvector matrix).
    private static void Rotate(double[] u, int n, int i, double c, double s)
    {
        var a = u.AsSpan(i * n, n);
        var b = u.AsSpan((i + 1) * n, n);
        for (int k = 0; k < n; k++)
        {
            double t = b[k];
            b[k] = s * a[k] + c * t;
            a[k] = c * a[k] - s * t;
        }
    }
}
