// Group norm and layer norm kernels. Statistics are accumulated in double per group/row (one thread each), which
// keeps them exact enough for the 1e-6 eps of the VAE and independent of the thread count.
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Norms
{
    /// <summary>
    /// x, y: [batch, channels, spatial]; gamma/beta: [channels] (nullable). mean/rstd (nullable): [batch, groups].
    /// </summary>
    public static void GroupNormForward(float* x, float* gamma, float* beta, float* y, int batch, int channels, long spatial,
        int groups, float eps, float* mean, float* rstd)
    {
        int cpg = channels / groups;
        long groupLen = cpg * spatial;
        Par.For(batch * groups, bg =>
        {
            int b = bg / groups, gi = bg % groups;
            float* xg = x + ((long)b * channels + (long)gi * cpg) * spatial;
            float* yg = y + ((long)b * channels + (long)gi * cpg) * spatial;
            var (m, r) = Moments(xg, groupLen, eps);
            if (mean != null) { mean[bg] = m; rstd[bg] = r; }
            for (int c = 0; c < cpg; c++)
            {
                int ch = gi * cpg + c;
                float a = r * (gamma != null ? gamma[ch] : 1f);
                float bb = (beta != null ? beta[ch] : 0f) - m * a;
                Affine(xg + c * spatial, yg + c * spatial, spatial, a, bb);
            }
        });
    }

    /// <summary>Rows of length n: y = (x - mean) * rstd * gamma + beta. mean/rstd (nullable): [rows].</summary>
    public static void LayerNormForward(float* x, float* gamma, float* beta, float* y, long rows, int n, float eps, float* mean, float* rstd)
    {
        Par.ForRange(rows, Math.Max(1, 4096 / Math.Max(1, n)), (s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                float* xr = x + r * n, yr = y + r * n;
                var (m, rs) = Moments(xr, n, eps);
                if (mean != null) { mean[r] = m; rstd[r] = rs; }
                int i = 0;
                if (Vector512.IsHardwareAccelerated && gamma != null && beta != null)
                {
                    var vm = Vector512.Create(m); var vr = Vector512.Create(rs);
                    for (; i + 16 <= n; i += 16)
                        Vector512.Store(Vector512.FusedMultiplyAdd((Vector512.Load(xr + i) - vm) * vr, Vector512.Load(gamma + i), Vector512.Load(beta + i)), yr + i);
                }
                for (; i < n; i++) yr[i] = (xr[i] - m) * rs * (gamma != null ? gamma[i] : 1f) + (beta != null ? beta[i] : 0f);
            }
        });
    }

    /// <summary>Mean and 1/sqrt(biased variance + eps), two passes in double.</summary>
    internal static (float mean, float rstd) Moments(float* x, long n, float eps)
    {
        double s = 0;
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var acc0 = Vector512<double>.Zero; var acc1 = Vector512<double>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                acc0 += lo; acc1 += hi;
            }
            s = Vector512.Sum(acc0 + acc1);
        }
        for (; i < n; i++) s += x[i];
        double m = s / n;
        double v = 0;
        i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vm = Vector512.Create(m);
            var acc0 = Vector512<double>.Zero; var acc1 = Vector512<double>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                lo -= vm; hi -= vm;
                acc0 += lo * lo; acc1 += hi * hi;
            }
            v = Vector512.Sum(acc0 + acc1);
        }
        for (; i < n; i++) { double dl = x[i] - m; v += dl * dl; }
        v /= n;
        return ((float)m, (float)(1.0 / Math.Sqrt(v + eps)));
    }

    private static void Affine(float* x, float* y, long n, float a, float b)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(a); var vb = Vector512.Create(b);
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.FusedMultiplyAdd(Vector512.Load(x + i), va, vb), y + i);
        }
        for (; i < n; i++) y[i] = x[i] * a + b;
    }
}
