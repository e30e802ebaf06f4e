// Group norm, group norm + SiLU and layer norm forward kernels. Statistics take one pass in double around a shift
// (the first value of the group/row), summed over fixed-size chunks in a fixed order, so they stay exact for the
// VAE's large activations with eps 1e-6 and do not depend on the thread count.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Norms
{
    /// <summary>Statistics are summed per chunk of this many values, then the chunks in order.</summary>
    private const int Chunk = 16384;

    /// <summary>Below this many (batch, group) pairs a group is also split into chunks across threads.</summary>
    private const int MinGroupJobs = 8;

    /// <summary>
    /// x, y: [batch, channels, spatial]; gamma/beta: [channels] (nullable). mean/rstd (nullable): [batch, groups].
    /// </summary>
    public static void GroupNormForward(float* x, float* gamma, float* beta, float* y, int batch, int channels, long spatial,
        int groups, float eps, float* mean, float* rstd) =>
        GroupNorm(x, gamma, beta, y, batch, channels, spatial, groups, eps, mean, rstd, silu: false);

    /// <summary>SiLU(GroupNorm(x)) in one pass over the output, for inference (no statistics are kept).</summary>
    public static void GroupNormSiluForward(float* x, float* gamma, float* beta, float* y, int batch, int channels, long spatial,
        int groups, float eps) =>
        GroupNorm(x, gamma, beta, y, batch, channels, spatial, groups, eps, null, null, silu: true);

    /// <summary>
    /// The per-(image, channel) constants of SiLU(GroupNorm(x)) (dst: [batch * channels]) for a consumer that applies
    /// them as it reads x (<see cref="NormSiluAffine.Apply"/>): the statistics are summed as GroupNormSiluForward sums
    /// them, so the activations come out with the same bits wherever both take the vector path.
    /// </summary>
    public static void GroupNormSiluAffines(float* x, float* gamma, float* beta, int batch, int channels, long spatial,
        int groups, float eps, NormSiluAffine* dst)
    {
        int cpg = channels / groups, jobs = batch * groups;
        long groupLen = cpg * spatial;
        if (jobs == 0 || groupLen == 0) return;
        var stats = GroupStats(x, jobs, groupLen, eps);
        for (int bg = 0; bg < jobs; bg++)
        {
            var st = stats[bg];
            int b = bg / groups, c0 = (bg % groups) * cpg;
            for (int ch = c0; ch < c0 + cpg; ch++)
                dst[(long)b * channels + ch] = new NormSiluAffine(st.Shift, st.Delta, st.Rstd * (gamma != null ? gamma[ch] : 1f),
                    beta != null ? beta[ch] : 0f);
        }
    }

    /// <summary>Statistics of each of jobs groups of groupLen values: chunk partial sums in parallel, combined in chunk order.</summary>
    private static Stats[] GroupStats(float* x, int jobs, long groupLen, float eps)
    {
        int chunks = (int)((groupLen + Chunk - 1) / Chunk);
        var partial = new Moments[jobs * chunks];
        var stats = new Stats[jobs];
        fixed (Moments* part = partial)
        {
            Moments* pp = part;
            Par.For(jobs * chunks, job =>
            {
                float* xg = x + (long)(job / chunks) * groupLen;
                pp[job] = SumChunks(xg, groupLen, job % chunks, job % chunks + 1, xg[0]);
            });
            for (int bg = 0; bg < jobs; bg++)
            {
                var total = new Moments(part[bg * chunks].Shift, 0, 0);
                for (int c = 0; c < chunks; c++) total = total.Add(part[bg * chunks + c]);
                stats[bg] = Finish(total, groupLen, eps);
            }
        }
        return stats;
    }

    private static void GroupNorm(float* x, float* gamma, float* beta, float* y, int batch, int channels, long spatial,
        int groups, float eps, float* mean, float* rstd, bool silu)
    {
        int cpg = channels / groups, jobs = batch * groups;
        long groupLen = cpg * spatial;
        if (jobs == 0 || groupLen == 0) return;
        int chunks = (int)((groupLen + Chunk - 1) / Chunk);
        if (jobs >= MinGroupJobs || chunks == 1)
        {
            // One thread per group: its statistics pass leaves part of the group in cache for the normalizing pass.
            Par.For(jobs, bg =>
            {
                float* xg = x + (long)bg * groupLen;
                var st = Finish(SumChunks(xg, groupLen, 0, chunks, xg[0]), groupLen, eps);
                if (mean != null) { mean[bg] = st.Mean; rstd[bg] = st.Rstd; }
                NormalizeGroup(xg, y + (long)bg * groupLen, 0, groupLen, spatial, (bg % groups) * cpg, gamma, beta, st, silu);
            });
            return;
        }
        // Few large groups (e.g. batch 1 with one group): chunk partial sums in parallel, combined in chunk order.
        var stats = GroupStats(x, jobs, groupLen, eps);
        if (mean != null)
            for (int bg = 0; bg < jobs; bg++) { mean[bg] = stats[bg].Mean; rstd[bg] = stats[bg].Rstd; }
        Par.For(jobs * chunks, job =>
        {
            int bg = job / chunks;
            long start = (long)(job % chunks) * Chunk;
            NormalizeGroup(x + (long)bg * groupLen, y + (long)bg * groupLen, start, Math.Min(groupLen, start + Chunk), spatial,
                (bg % groups) * cpg, gamma, beta, stats[bg], silu);
        });
    }

    /// <summary>Rows of length n: y = (x - mean) * rstd * gamma + beta. mean/rstd (nullable): [rows].</summary>
    public static void LayerNormForward(float* x, float* gamma, float* beta, float* y, long rows, int n, float eps, float* mean, float* rstd)
    {
        if (n == 0) return;
        Par.ForRange(rows, Math.Max(1, 4096 / n), (s, e) => LayerNormRows(x, gamma, beta, y, s, e, n, eps, mean, rstd));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerNormRows(float* x, float* gamma, float* beta, float* y, long first, long end, int n, float eps, float* mean, float* rstd)
    {
        for (long row = first; row < end; row++)
        {
            float* xr = x + row * n, yr = y + row * n;
            var st = Finish(SumChunks(xr, n, 0, (n + Chunk - 1) / Chunk, xr[0]), n, eps);
            if (mean != null) { mean[row] = st.Mean; rstd[row] = st.Rstd; }
            if (gamma == null && beta == null) { Affine(xr, yr, n, st, st.Rstd, 0f, silu: false); continue; }
            var vs = Vector512.Create(st.Shift); var vd = Vector512.Create(st.Delta); var vr = Vector512.Create(st.Rstd);
            int i = 0;
            for (; i + 16 <= n; i += 16)
            {
                var g = gamma != null ? Vector512.Load(gamma + i) : Vector512<float>.One;
                var b = beta != null ? Vector512.Load(beta + i) : Vector512<float>.Zero;
                Vector512.Store(Vector512.FusedMultiplyAdd((Vector512.Load(xr + i) - vs - vd) * vr, g, b), yr + i);
            }
            for (; i < n; i++) yr[i] = MathF.FusedMultiplyAdd((xr[i] - st.Shift - st.Delta) * st.Rstd, gamma != null ? gamma[i] : 1f, beta != null ? beta[i] : 0f);
        }
    }

    /// <summary>Sums of (x - Shift) and (x - Shift)^2 in double.</summary>
    private readonly record struct Moments(double Shift, double Sum, double SumSq)
    {
        public Moments Add(Moments o) => this with { Sum = Sum + o.Sum, SumSq = SumSq + o.SumSq };
    }

    /// <summary>Moments of chunks [first, last) of x (n values), each chunk summed on its own, then in order.</summary>
    private static Moments SumChunks(float* x, long n, int first, int last, float shift)
    {
        var total = new Moments(shift, 0, 0);
        for (int c = first; c < last; c++)
        {
            long s = (long)c * Chunk;
            total = total.Add(ChunkMoments(x + s, (int)Math.Min(Chunk, n - s), shift));
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Moments ChunkMoments(float* x, int n, float shift)
    {
        var k = Vector512.Create((double)shift);
        Vector512<double> s0 = default, s1 = default, q0 = default, q1 = default;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
            lo -= k; hi -= k;
            s0 += lo; s1 += hi;
            q0 = Vector512.FusedMultiplyAdd(lo, lo, q0); q1 = Vector512.FusedMultiplyAdd(hi, hi, q1);
        }
        double sum = Vector512.Sum(s0 + s1), sq = Vector512.Sum(q0 + q1);
        for (; i < n; i++) { double d = x[i] - (double)shift; sum += d; sq += d * d; }
        return new Moments(shift, sum, sq);
    }

    /// <summary>
    /// mean = Shift + Delta and 1/sqrt(biased variance + eps). Normalizing as (x - Shift) - Delta keeps full precision
    /// when the mean is large against the spread (x - Shift is exact for nearby values): x - (float)mean would not.
    /// </summary>
    private readonly record struct Stats(float Shift, float Delta, float Rstd)
    {
        public float Mean => Shift + Delta;
    }

    private static Stats Finish(Moments m, long n, float eps)
    {
        double d = m.Sum / n;
        double v = Math.Max(0, m.SumSq / n - d * d);
        return new Stats((float)m.Shift, (float)d, (float)(1.0 / Math.Sqrt(v + eps)));
    }

    /// <summary>Normalizes values [start, end) of one group (channels of `spatial` values from channel c0 on).</summary>
    private static void NormalizeGroup(float* xg, float* yg, long start, long end, long spatial, int c0, float* gamma, float* beta,
        Stats st, bool silu)
    {
        for (long i = start; i < end;)
        {
            long c = i / spatial, segEnd = Math.Min(end, (c + 1) * spatial);
            int ch = c0 + (int)c;
            Affine(xg + i, yg + i, segEnd - i, st, st.Rstd * (gamma != null ? gamma[ch] : 1f), beta != null ? beta[ch] : 0f, silu);
            i = segEnd;
        }
    }

    /// <summary>y = ((x - Shift) - Delta) a + b, then SiLU if asked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Affine(float* x, float* y, long n, Stats st, float a, float b, bool silu)
    {
        var vs = Vector512.Create(st.Shift); var vd = Vector512.Create(st.Delta);
        var va = Vector512.Create(a); var vb = Vector512.Create(b);
        long i = 0;
        if (silu)
        {
            for (; i + 16 <= n; i += 16) Vector512.Store(NormSiluAffine.Apply(Vector512.Load(x + i), vs, vd, va, vb), y + i);
            for (; i < n; i++) y[i] = SiluOp.Apply(MathF.FusedMultiplyAdd(x[i] - st.Shift - st.Delta, a, b));
        }
        else
        {
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - vs - vd, va, vb), y + i);
            for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i] - st.Shift - st.Delta, a, b);
        }
    }
}

/// <summary>One channel's SiLU(GroupNorm) as an affine map and SiLU: y = SiLU(((x - Shift) - Delta) A + B).</summary>
public readonly record struct NormSiluAffine(float Shift, float Delta, float A, float B)
{
    /// <summary>The vector form every fused group norm + SiLU uses, so that they agree bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> x, Vector512<float> shift, Vector512<float> delta, Vector512<float> a, Vector512<float> b)
    {
        // SiluOp's Vector512.Exp widens to double and would make these passes compute-bound.
        var t = Vector512.FusedMultiplyAdd(x - shift - delta, a, b);
        return t / (Vector512<float>.One + AttentionTiles.Exp(-t));
    }
}

/// <summary>Two-pass group and layer norm in double: the oracle for the fast kernels.</summary>
internal static unsafe class NormsReference
{
    public static void GroupNorm(float* x, float* gamma, float* beta, float* y, int batch, int channels, long spatial, int groups, float eps)
    {
        int cpg = channels / groups;
        long len = cpg * spatial;
        for (int bg = 0; bg < batch * groups; bg++)
        {
            float* xg = x + bg * len, yg = y + bg * len;
            var (m, r) = Moments(xg, len, eps);
            for (long i = 0; i < len; i++)
            {
                int ch = (bg % groups) * cpg + (int)(i / spatial);
                yg[i] = (float)((xg[i] - m) * r * (gamma != null ? gamma[ch] : 1f) + (beta != null ? beta[ch] : 0f));
            }
        }
    }

    public static void LayerNorm(float* x, float* gamma, float* beta, float* y, long rows, int n, float eps)
    {
        for (long row = 0; row < rows; row++)
        {
            var (m, r) = Moments(x + row * n, n, eps);
            for (int i = 0; i < n; i++)
                y[row * n + i] = (float)((x[row * n + i] - m) * r * (gamma != null ? gamma[i] : 1f) + (beta != null ? beta[i] : 0f));
        }
    }

    private static (double mean, double rstd) Moments(float* x, long n, float eps)
    {
        double s = 0;
        for (long i = 0; i < n; i++) s += x[i];
        double m = s / n, v = 0;
        for (long i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
        return (m, 1.0 / Math.Sqrt(v / n + eps));
    }
}
