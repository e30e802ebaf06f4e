// Fused scaled-dot-product attention with an online (streaming) softmax: the [Tq, Tk] score matrix is never
// materialized, only one block of keys at a time. Inputs stay in the projection layout [B, T, H*D].
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>Geometry: q [Batch, Tq, Heads*HeadDim], k/v [Batch, Tk, Heads*HeadDim], output like q.</summary>
public readonly record struct AttentionShape(int Batch, int Heads, int Tq, int Tk, int HeadDim, bool Causal)
{
    public int Width => Heads * HeadDim;
    /// <summary>QK^T and PV, 2 FLOPs per multiply-add (the softmax is not counted).</summary>
    public long Flops => 4L * Batch * Heads * Tq * Tk * HeadDim;
}

public static unsafe class Attention
{
    private const int QueryBlock = 16;

    /// <summary>o = softmax(scale * q k^T [+ causal mask]) v; lse (nullable, [Batch, Heads, Tq]) receives log-sum-exp of the scaled scores.</summary>
    public static void Forward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float scale)
    {
        var g = s;
        int blocks = (g.Tq + QueryBlock - 1) / QueryBlock;
        Par.For(g.Batch * g.Heads * blocks, job =>
        {
            int blk = job % blocks, bh = job / blocks, h = bh % g.Heads, b = bh / g.Heads;
            var rowBuf = new float[g.Tk];
            fixed (float* p = rowBuf)
                for (int i = blk * QueryBlock; i < Math.Min(g.Tq, (blk + 1) * QueryBlock); i++)
                    Row(g, q, k, v, o, lse, scale, b, h, i, p);
        });
    }

    private static void Row(in AttentionShape g, float* q, float* k, float* v, float* o, float* lse, float scale, int b, int h, int i, float* p)
    {
        int d = g.HeadDim, width = g.Width;
        float* qi = q + ((long)b * g.Tq + i) * width + h * d;
        float* oi = o + ((long)b * g.Tq + i) * width + h * d;
        int tk = g.Causal ? Math.Min(g.Tk, i + 1) : g.Tk; // top-left aligned, as torch SDPA is_causal
        float max = float.NegativeInfinity;
        for (int j = 0; j < tk; j++)
        {
            float sc = Blas.Dot(qi, k + ((long)b * g.Tk + j) * width + h * d, d) * scale;
            p[j] = sc;
            if (sc > max) max = sc;
        }
        float sum = 0;
        for (int j = 0; j < tk; j++) { float e = MathF.Exp(p[j] - max); p[j] = e; sum += e; }
        new Span<float>(oi, d).Clear();
        float inv = 1f / sum;
        for (int j = 0; j < tk; j++) Blas.Axpy(p[j] * inv, v + ((long)b * g.Tk + j) * width + h * d, oi, d);
        if (lse != null) lse[((long)b * g.Heads + h) * g.Tq + i] = max + MathF.Log(sum);
    }

    /// <summary>
    /// Gradients of the fused attention, recomputing probabilities from lse: gq, gk, gv are overwritten.
    /// dP = go v^T, dS = P (dP - rowsum(go * o)), gq = scale dS k, gk = scale dS^T q, gv = P^T go.
    /// </summary>
    public static void Backward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float* go, float scale,
        float* gq, float* gk, float* gv)
    {
        var g = s;
        int d = g.HeadDim, width = g.Width;
        new Span<float>(gq, checked((int)((long)g.Batch * g.Tq * width))).Clear();
        new Span<float>(gk, checked((int)((long)g.Batch * g.Tk * width))).Clear();
        new Span<float>(gv, checked((int)((long)g.Batch * g.Tk * width))).Clear();
        // One job per (batch, head): gk/gv rows of a head are written by one thread only.
        Par.For(g.Batch * g.Heads, bh =>
        {
            int h = bh % g.Heads, b = bh / g.Heads;
            var pBuf = new float[g.Tk];
            fixed (float* p = pBuf)
                for (int i = 0; i < g.Tq; i++)
                {
                    long qoff = ((long)b * g.Tq + i) * width + h * d;
                    float* qi = q + qoff, oi = o + qoff, goi = go + qoff, gqi = gq + qoff;
                    float l = lse[((long)b * g.Heads + h) * g.Tq + i];
                    int tk = g.Causal ? Math.Min(g.Tk, i + 1) : g.Tk; // top-left aligned, as torch SDPA is_causal
                    float delta = Blas.Dot(goi, oi, d);
                    for (int j = 0; j < tk; j++)
                    {
                        long koff = ((long)b * g.Tk + j) * width + h * d;
                        float pij = MathF.Exp(Blas.Dot(qi, k + koff, d) * scale - l);
                        float dp = Blas.Dot(goi, v + koff, d);
                        float ds = pij * (dp - delta) * scale;
                        Blas.Axpy(ds, k + koff, gqi, d);
                        Blas.Axpy(ds, qi, gk + koff, d);
                        Blas.Axpy(pij, goi, gv + koff, d);
                    }
                }
        });
    }
}

/// <summary>Materialized attention in double (scores, softmax, weighted sum): the oracle for the fused kernel.</summary>
public static unsafe class AttentionReference
{
    public static void Forward(in AttentionShape g, float* q, float* k, float* v, float* o, float scale)
    {
        int d = g.HeadDim, width = g.Width;
        var sc = new double[g.Tk];
        for (int b = 0; b < g.Batch; b++)
            for (int h = 0; h < g.Heads; h++)
                for (int i = 0; i < g.Tq; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < g.Tk; j++)
                    {
                        bool masked = g.Causal && j > i;
                        double acc = 0;
                        for (int c = 0; c < d; c++) acc += (double)q[((long)b * g.Tq + i) * width + h * d + c] * k[((long)b * g.Tk + j) * width + h * d + c];
                        sc[j] = masked ? double.NegativeInfinity : acc * scale;
                        max = Math.Max(max, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < g.Tk; j++) { sc[j] = Math.Exp(sc[j] - max); sum += sc[j]; }
                    for (int c = 0; c < d; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < g.Tk; j++) acc += sc[j] / sum * v[((long)b * g.Tk + j) * width + h * d + c];
                        o[((long)b * g.Tq + i) * width + h * d + c] = (float)acc;
                    }
                }
    }
}
