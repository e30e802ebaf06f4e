// Backward kernels of group norm and layer norm, given the forward's per-row mean and rstd: the input gradient
// (vectorized, parallel over rows) and the gamma/beta gradients (summed in a fixed order, so any thread count gives
// the same bits). NormBackwardReference is the double-precision oracle.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class NormBackward
{
    /// <summary>
    /// x, g: [batch, channels, spatial]; gamma: [channels] or null; mean, rstd: [batch * groups]. Writes gx (if not
    /// null, overwritten) and dgamma, dbeta (if not null, overwritten; [channels]).
    /// </summary>
    public static void GroupNorm(float* x, float* g, float* gamma, float* mean, float* rstd, int batch, int channels, long spatial, int groups,
        float* gx, float* dgamma, float* dbeta)
    {
        int cpg = channels / groups;
        // per (image, channel): sum of g and sum of g * xhat, from which everything else follows
        var sums = NativeBuffer.Rent(2L * batch * channels * sizeof(float));
        try
        {
            float* sg = (float*)sums.Pointer, sgx = sg + (long)batch * channels;
            Par.For(batch * groups, r =>
            {
                int b = r / groups, c0 = r % groups * cpg;
                float m = mean[r], rs = rstd[r];
                float sumDy = 0, sumDyX = 0;
                for (int c = c0; c < c0 + cpg; c++)
                {
                    long off = ((long)b * channels + c) * spatial;
                    var (s, sx) = SumAndCentredDot(g + off, null, x + off, m, spatial);
                    sg[b * channels + c] = s;
                    sgx[b * channels + c] = sx * rs;
                    float gam = gamma != null ? gamma[c] : 1f;
                    sumDy += gam * s;
                    sumDyX += gam * sx * rs;
                }
                if (gx == null) return;
                float n = cpg * spatial, mDy = sumDy / n, mDyX = sumDyX / n;
                // gx = rs * (gamma g - mDy - xhat mDyX) = a g + k x + c with xhat = (x - m) rs
                float k = -rs * rs * mDyX, cst = -rs * mDy + rs * rs * mDyX * m;
                for (int c = c0; c < c0 + cpg; c++)
                {
                    long off = ((long)b * channels + c) * spatial;
                    Affine2(rs * (gamma != null ? gamma[c] : 1f), g + off, k, x + off, cst, gx + off, spatial);
                }
            });
            for (int c = 0; c < channels; c++)
            {
                float dg = 0, db = 0;
                for (int b = 0; b < batch; b++) { dg += sgx[b * channels + c]; db += sg[b * channels + c]; }
                if (dgamma != null) dgamma[c] = dg;
                if (dbeta != null) dbeta[c] = db;
            }
        }
        finally { sums.Release(); }
    }

    /// <summary>
    /// x, g: [rows, len]; gamma: [len] or null; mean, rstd: [rows]. Writes gx (if not null) and dgamma, dbeta (if not
    /// null; [len]), all overwritten.
    /// </summary>
    public static void LayerNorm(float* x, float* g, float* gamma, float* mean, float* rstd, long rows, int len, float* gx, float* dgamma, float* dbeta)
    {
        if (gx != null)
            Par.ForRange(rows, Math.Max(1, 4096 / len), (s, e) =>
            {
                for (long r = s; r < e; r++) LayerNormRow(x + r * len, g + r * len, gamma, mean[r], rstd[r], len, gx + r * len);
            });
        if (dgamma == null && dbeta == null) return;
        // column sums over rows: fixed runs of rows (from the shape alone) summed in parallel, each column in row order,
        // then the runs' partial sums added in run order, so any thread count gives the same bits
        int runs = (int)Math.Clamp(rows / LayerNormRowsPerRun, 1, 64);
        long per = (rows + runs - 1) / runs;
        var partials = NativeBuffer.Rent(2L * runs * len * sizeof(float));
        try
        {
            float* pg = (float*)partials.Pointer, pb = pg + (long)runs * len;
            Par.For(runs, run =>
            {
                long r0 = run * per, r1 = Math.Min(rows, r0 + per);
                LayerNormColumns(x, g, mean, rstd, r0, r1, len, pg + (long)run * len, pb + (long)run * len);
            });
            for (int i = 0; i < len; i++)
            {
                float dg = 0, db = 0;
                for (int run = 0; run < runs; run++) { dg += pg[(long)run * len + i]; db += pb[(long)run * len + i]; }
                if (dgamma != null) dgamma[i] = dg;
                if (dbeta != null) dbeta[i] = db;
            }
        }
        finally { partials.Release(); }
    }

    /// <summary>Rows per run of the layer-norm gamma/beta column sums.</summary>
    private const int LayerNormRowsPerRun = 512;

    /// <summary>
    /// One row's input gradient: with dy = g gamma and xhat = (x - m) rs, gx = rs (dy - mean(dy) - xhat mean(dy xhat)).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerNormRow(float* x, float* g, float* gamma, float m, float rs, int len, float* gx)
    {
        var (sumDy, sumDyX) = SumAndCentredDot(g, gamma, x, m, len);
        // gx = rs dy + k (x - m) + c
        float k = -rs * rs * rs * sumDyX / len, c = -rs * sumDy / len;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vm = Vector512.Create(m); var vk = Vector512.Create(k); var vc = Vector512.Create(c); var vr = Vector512.Create(rs);
            for (; i + 16 <= len; i += 16)
            {
                var dy = Vector512.Load(g + i);
                if (gamma != null) dy *= Vector512.Load(gamma + i);
                Vector512.Store(Vector512.FusedMultiplyAdd(vr, dy, Vector512.FusedMultiplyAdd(vk, Vector512.Load(x + i) - vm, vc)), gx + i);
            }
        }
        for (; i < len; i++)
        {
            float dy = g[i] * (gamma != null ? gamma[i] : 1f);
            gx[i] = MathF.FusedMultiplyAdd(rs, dy, MathF.FusedMultiplyAdd(k, x[i] - m, c));
        }
    }

    /// <summary>Sums of g xhat and of g over rows [r0, r1), column by column in row order, into dg and db (overwritten).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerNormColumns(float* x, float* g, float* mean, float* rstd, long r0, long r1, int len, float* dg, float* db)
    {
        new Span<float>(dg, len).Clear();
        new Span<float>(db, len).Clear();
        for (long r = r0; r < r1; r++)
        {
            float* xr = x + r * len, gr = g + r * len;
            float m = mean[r], rs = rstd[r];
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var vm = Vector512.Create(m); var vr = Vector512.Create(rs);
                for (; i + 16 <= len; i += 16)
                {
                    var gv = Vector512.Load(gr + i);
                    Vector512.Store(Vector512.FusedMultiplyAdd(gv, (Vector512.Load(xr + i) - vm) * vr, Vector512.Load(dg + i)), dg + i);
                    Vector512.Store(Vector512.Load(db + i) + gv, db + i);
                }
            }
            for (; i < len; i++)
            {
                dg[i] = MathF.FusedMultiplyAdd(gr[i], (xr[i] - m) * rs, dg[i]);
                db[i] += gr[i];
            }
        }
    }

    /// <summary>(sum of dy, sum of dy * (x - m)) over n values with dy = g gamma (gamma null: g), in a fixed order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (float Sum, float Dot) SumAndCentredDot(float* g, float* gamma, float* x, float m, long n)
    {
        long i = 0;
        float s = 0, d = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var vs = Vector512<float>.Zero; var vd = Vector512<float>.Zero; var vm = Vector512.Create(m);
            for (; i + 16 <= n; i += 16)
            {
                var gv = Vector512.Load(g + i);
                if (gamma != null) gv *= Vector512.Load(gamma + i);
                vs += gv;
                vd = Vector512.FusedMultiplyAdd(gv, Vector512.Load(x + i) - vm, vd);
            }
            s = Vector512.Sum(vs); d = Vector512.Sum(vd);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var vs = Vector256<float>.Zero; var vd = Vector256<float>.Zero; var vm = Vector256.Create(m);
            for (; i + 8 <= n; i += 8)
            {
                var gv = Vector256.Load(g + i);
                if (gamma != null) gv *= Vector256.Load(gamma + i);
                vs += gv;
                vd = Vector256.FusedMultiplyAdd(gv, Vector256.Load(x + i) - vm, vd);
            }
            s = Vector256.Sum(vs); d = Vector256.Sum(vd);
        }
        for (; i < n; i++)
        {
            float dy = gamma != null ? g[i] * gamma[i] : g[i];
            s += dy;
            d += dy * (x[i] - m);
        }
        return (s, d);
    }

    /// <summary>y = a g + k x + c over n values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Affine2(float a, float* g, float k, float* x, float c, float* y, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(a); var vk = Vector512.Create(k); var vc = Vector512.Create(c);
            for (; i + 16 <= n; i += 16)
                Vector512.Store(Vector512.FusedMultiplyAdd(va, Vector512.Load(g + i), Vector512.FusedMultiplyAdd(vk, Vector512.Load(x + i), vc)), y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a); var vk = Vector256.Create(k); var vc = Vector256.Create(c);
            for (; i + 8 <= n; i += 8)
                Vector256.Store(Vector256.FusedMultiplyAdd(va, Vector256.Load(g + i), Vector256.FusedMultiplyAdd(vk, Vector256.Load(x + i), vc)), y + i);
        }
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, g[i], MathF.FusedMultiplyAdd(k, x[i], c));
    }
}

/// <summary>Norm backward in double, element by element from the definitions: the oracle for <see cref="NormBackward"/>.</summary>
internal static unsafe class NormBackwardReference
{
    /// <summary>Rows of len values; param(r, i) is the gamma/beta index of element i of row r. Same outputs as the kernels.</summary>
    public static void Rows(float* x, float* g, float* gamma, float* mean, float* rstd, long rows, long len, Func<long, long, int> param, int paramCount,
        float* gx, float* dgamma, float* dbeta)
    {
        var dg = new double[paramCount];
        var db = new double[paramCount];
        for (long r = 0; r < rows; r++)
        {
            double m = mean[r], rs = rstd[r], sumDy = 0, sumDyX = 0;
            for (long i = 0; i < len; i++)
            {
                long idx = r * len + i;
                int c = param(r, i);
                double xhat = (x[idx] - m) * rs, dy = g[idx] * (gamma != null ? gamma[c] : 1.0);
                sumDy += dy; sumDyX += dy * xhat;
                dg[c] += g[idx] * xhat; db[c] += g[idx];
            }
            if (gx == null) continue;
            for (long i = 0; i < len; i++)
            {
                long idx = r * len + i;
                int c = param(r, i);
                double xhat = (x[idx] - m) * rs, dy = g[idx] * (gamma != null ? gamma[c] : 1.0);
                gx[idx] = (float)(rs * (dy - sumDy / len - xhat * sumDyX / len));
            }
        }
        for (int c = 0; c < paramCount; c++)
        {
            if (dgamma != null) dgamma[c] = (float)dg[c];
            if (dbeta != null) dbeta[c] = (float)db[c];
        }
    }
}
