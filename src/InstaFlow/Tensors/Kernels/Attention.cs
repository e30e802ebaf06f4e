// Fused scaled-dot-product attention, flash style: queries are processed in blocks against packed key blocks with an
// online softmax, so the [Tq, Tk] score matrix is never materialized. Inputs stay in the projection layout [B, T, H*D].
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static InstaFlow.Tensors.Kernels.AttentionTiles;

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
    // 64 query rows x 128 keys keeps the score tile (32 KiB) and the packed key block (D x 128) near L1/L2 while the
    // softmax bookkeeping (one horizontal max/sum per row and block) stays small against the 2 x 64 x 128 x D FMAs.
    private const int QueryBlock = 64;
    private const int MaxKeyBlock = 128;
    private const int BackwardBlock = 64;
    // The per-block methods are marked AggressiveOptimization: a one-step model calls them only a few times, and at
    // tier 0 the Vector512 code is not inlined and runs several times slower until tiering catches up.

    /// <summary>Packed key blocks of one call: for each (batch, head, block) K^T [D][bk] then V [bk][Dp], zero padded.</summary>
    private readonly struct KeyPack(int headDim, int paddedDim, int keyBlock, int blocks)
    {
        public readonly int D = headDim, Dp = paddedDim, Bk = keyBlock, Blocks = blocks;
        public long BlockFloats => (long)D * Bk + (long)Bk * Dp;
    }

    /// <summary>o = softmax(scale * q k^T [+ causal mask]) v; lse (nullable, [Batch, Heads, Tq]) receives log-sum-exp of the scaled scores.</summary>
    public static void Forward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float scale)
    {
        var g = s;
        Validate(g);
        if (g.Batch == 0 || g.Heads == 0 || g.Tq == 0) return;
        int bk = Math.Min(MaxKeyBlock, RoundUp(g.Tk, 16));
        var pack = new KeyPack(g.HeadDim, RoundUp(g.HeadDim, 16), bk, (g.Tk + bk - 1) / bk);
        int heads = g.Batch * g.Heads;
        var buf = NativeBuffer.Rent(heads * pack.Blocks * pack.BlockFloats * sizeof(float));
        try
        {
            float* packed = (float*)buf.Pointer;
            Par.For(heads * pack.Blocks, job =>
            {
                int kb = job % pack.Blocks, bh = job / pack.Blocks;
                float* dst = packed + (long)job * pack.BlockFloats;
                PackKeyBlock(g, bh / g.Heads, bh % g.Heads, kb * bk, k, pack.Bk, dst, transposed: true, ld: pack.Bk);
                PackKeyBlock(g, bh / g.Heads, bh % g.Heads, kb * bk, v, pack.Bk, dst + (long)pack.D * pack.Bk, transposed: false, ld: pack.Dp);
            });
            int qBlocks = (g.Tq + QueryBlock - 1) / QueryBlock;
            Par.For(heads * qBlocks, job =>
            {
                int qb = job % qBlocks, bh = job / qBlocks;
                ForwardBlock(g, pack, packed + (long)bh * pack.Blocks * pack.BlockFloats, q, o, lse, scale, bh, qb * QueryBlock);
            });
        }
        finally { buf.Release(); }
    }

    private static void Validate(in AttentionShape g)
    {
        if (g.Batch < 0 || g.Heads < 0 || g.Tq < 0 || g.Tk <= 0 || g.HeadDim <= 0)
            throw new ArgumentException($"Attention: invalid shape {g} (needs at least one key and a positive head dim)");
    }

    /// <summary>
    /// Copies keys [j0, j0 + bk) of one head, either transposed ([D][ld], for score tiles) or row-major ([bk][ld],
    /// for P V and gradient tiles); rows past Tk and columns past D are zero so the tiles need no tails.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackKeyBlock(in AttentionShape g, int b, int h, int j0, float* src, int bk, float* dst, bool transposed, int ld)
    {
        int d = g.HeadDim, width = g.Width, n = Math.Min(bk, g.Tk - j0);
        new Span<float>(dst, transposed ? d * ld : bk * ld).Clear();
        for (int jj = 0; jj < n; jj++)
        {
            float* row = src + ((long)b * g.Tk + j0 + jj) * width + (long)h * d;
            if (transposed) for (int c = 0; c < d; c++) dst[(long)c * ld + jj] = row[c];
            else new ReadOnlySpan<float>(row, d).CopyTo(new Span<float>(dst + (long)jj * ld, d));
        }
    }

    /// <summary>Copies `rows` rows of one head times `mul` into [padRows][ld], zero-filling the padding.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackRows(float* src, long rowStride, int d, int rows, int padRows, float mul, float* dst, int ld)
    {
        new Span<float>(dst, padRows * ld).Clear();
        for (int r = 0; r < rows; r++)
        {
            float* x = src + r * rowStride, y = dst + (long)r * ld;
            for (int c = 0; c < d; c++) y[c] = x[c] * mul;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock(in AttentionShape g, in KeyPack pack, float* keys, float* q, float* o, float* lse, float scale, int bh, int i0)
    {
        int b = bh / g.Heads, h = bh % g.Heads, d = g.HeadDim, dp = pack.Dp, bk = pack.Bk;
        int rows = Math.Min(QueryBlock, g.Tq - i0), rowsP = RoundUp(rows, Rows);
        float* qs = ThreadScratch.Get((long)QueryBlock * (2 * dp + bk + 3));
        float* acc = qs + QueryBlock * dp, sc = acc + QueryBlock * dp, m = sc + QueryBlock * bk, l = m + QueryBlock, alpha = l + QueryBlock;
        long rowOff = (long)b * g.Tq + i0;
        // The scale goes into the packed queries, so the tiles hold scaled scores directly.
        PackRows(q + rowOff * g.Width + (long)h * d, g.Width, d, rows, rowsP, scale, qs, dp);
        new Span<float>(acc, rowsP * dp).Clear();
        new Span<float>(m, rowsP).Fill(float.NegativeInfinity);
        new Span<float>(l, rowsP).Clear();
        int keyEnd = g.Causal ? Math.Min(g.Tk, i0 + rows) : g.Tk;
        for (int j0 = 0, kb = 0; j0 < keyEnd; j0 += bk, kb++)
        {
            float* kt = keys + kb * pack.BlockFloats, vb = kt + (long)d * bk;
            int colsP = RoundUp(Math.Min(bk, keyEnd - j0), 16);
            MulABt(qs, dp, kt, bk, d, sc, bk, rowsP, colsP);
            for (int r = 0; r < rowsP; r++)
            {
                // Padding rows (r >= rows) see all keys: their results are dropped, they only need to stay finite.
                int limit = g.Causal && r < rows ? Math.Min(g.Tk, i0 + r + 1) : g.Tk;
                alpha[r] = OnlineSoftmaxRow(sc + (long)r * bk, j0, colsP, limit, ref m[r], ref l[r]);
            }
            MulAB(sc, bk, vb, dp, colsP, acc, dp, rowsP, dp, alpha);
        }
        for (int r = 0; r < rows; r++)
        {
            float inv = 1f / l[r];
            float* orow = o + (rowOff + r) * g.Width + (long)h * d, arow = acc + (long)r * dp;
            for (int c = 0; c < d; c++) orow[c] = arow[c] * inv;
            if (lse != null) lse[(long)bh * g.Tq + i0 + r] = m[r] + MathF.Log(l[r]);
        }
    }

    /// <summary>
    /// Turns one row of scaled scores for keys [j0, j0 + cols) into exp(s - running max) in place, masking keys at or
    /// past limit, and updates the running max m and sum l. Returns the factor that rescales the row's accumulator.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float OnlineSoftmaxRow(float* s, int j0, int cols, int limit, ref float m, ref float l)
    {
        var vmax = Vector512.Create(float.NegativeInfinity);
        if (limit >= j0 + cols)
            for (int j = 0; j < cols; j += 16) vmax = Vector512.Max(vmax, Vector512.Load(s + j));
        else
            for (int j = 0; j < cols; j += 16)
            {
                var x = Vector512.ConditionalSelect(MaskFrom(j0 + j, limit), Vector512.Create(float.NegativeInfinity), Vector512.Load(s + j));
                Vector512.Store(x, s + j);
                vmax = Vector512.Max(vmax, x);
            }
        float mNew = MathF.Max(m, HorizontalMax(vmax));
        if (float.IsNegativeInfinity(mNew))
        {
            // No key of this row in the block and none before: keep the (empty) state.
            new Span<float>(s, cols).Clear();
            return 1f;
        }
        float alpha = MathF.Exp(m - mNew);
        var vm = Vector512.Create(mNew);
        var vsum = Vector512<float>.Zero;
        for (int j = 0; j < cols; j += 16)
        {
            var p = AttentionTiles.Exp(Vector512.Load(s + j) - vm);
            Vector512.Store(p, s + j);
            vsum += p;
        }
        l = l * alpha + Vector512.Sum(vsum);
        m = mNew;
        return alpha;
    }

    /// <summary>
    /// Gradients of the fused attention, recomputing probabilities from lse: gq, gk, gv are overwritten.
    /// dP = go v^T, dS = P (dP - rowsum(go * o)), gq = scale dS k, gk = scale dS^T q, gv = P^T go.
    /// One job per (batch, head) walks key blocks then query blocks in a fixed order, so every gradient element is
    /// summed by one thread in one order: the results do not depend on the thread count.
    /// </summary>
    public static void Backward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float* go, float scale,
        float* gq, float* gk, float* gv)
    {
        var g = s;
        Validate(g);
        if (g.Batch == 0 || g.Heads == 0) return;
        Par.For(g.Batch * g.Heads, bh => BackwardHead(g, q, k, v, o, lse, go, scale, gq, gk, gv, bh));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardHead(in AttentionShape g, float* q, float* k, float* v, float* o, float* lse, float* go, float scale,
        float* gq, float* gk, float* gv, int bh)
    {
        const int B = BackwardBlock;
        int b = bh / g.Heads, h = bh % g.Heads, d = g.HeadDim, dp = RoundUp(d, 16), width = g.Width;
        int tqP = RoundUp(g.Tq, B);
        long headOff = (long)h * d;
        float* qBase = q + (long)b * g.Tq * width + headOff, goBase = go + (long)b * g.Tq * width + headOff;
        float* oBase = o + (long)b * g.Tq * width + headOff;
        float* qs = ThreadScratch.Get(3L * tqP * dp + 2L * tqP + 2L * d * B + 3L * B * dp + 2L * B * B);
        float* dos = qs + (long)tqP * dp, gqAcc = dos + (long)tqP * dp, rowLse = gqAcc + (long)tqP * dp, delta = rowLse + tqP;
        float* kt = delta + tqP, vt = kt + (long)d * B, kn = vt + (long)d * B, gkAcc = kn + (long)B * dp, gvAcc = gkAcc + (long)B * dp;
        float* p = gvAcc + (long)B * dp, ds = p + B * B;

        PackRows(qBase, width, d, g.Tq, tqP, scale, qs, dp);
        PackRows(goBase, width, d, g.Tq, tqP, 1f, dos, dp);
        new Span<float>(gqAcc, tqP * dp).Clear();
        for (int i = 0; i < tqP; i++)
        {
            // Padding rows get lse = +inf, hence P = 0 and no contribution.
            rowLse[i] = i < g.Tq ? lse[(long)bh * g.Tq + i] : float.PositiveInfinity;
            delta[i] = i < g.Tq ? Blas.Dot(goBase + (long)i * width, oBase + (long)i * width, d) : 0f;
        }
        for (int j0 = 0; j0 < g.Tk; j0 += B)
        {
            int cols = Math.Min(B, g.Tk - j0), colsP = RoundUp(cols, 16);
            PackKeyBlock(g, b, h, j0, k, B, kt, transposed: true, ld: B);
            PackKeyBlock(g, b, h, j0, v, B, vt, transposed: true, ld: B);
            PackKeyBlock(g, b, h, j0, k, B, kn, transposed: false, ld: dp);
            new Span<float>(gkAcc, B * dp).Clear();
            new Span<float>(gvAcc, B * dp).Clear();
            // Causal: query i only sees keys j <= i, so blocks of queries before j0 contribute nothing.
            for (int i0 = g.Causal ? j0 / B * B : 0; i0 < g.Tq; i0 += B)
            {
                int rowsP = RoundUp(Math.Min(B, g.Tq - i0), Rows);
                MulABt(qs + (long)i0 * dp, dp, kt, B, d, p, B, rowsP, colsP);
                MulABt(dos + (long)i0 * dp, dp, vt, B, d, ds, B, rowsP, colsP);
                for (int r = 0; r < rowsP; r++)
                {
                    int i = i0 + r, limit = g.Causal ? Math.Min(cols, i + 1 - j0) : cols;
                    GradientRow(p + r * B, ds + r * B, colsP, limit, rowLse[i], delta[i]);
                }
                MulAB(ds, B, kn, dp, colsP, gqAcc + (long)i0 * dp, dp, rowsP, dp, null);
                MulAtB(p, B, dos + (long)i0 * dp, dp, rowsP, gvAcc, dp, colsP, dp);
                // qs already carries the scale, so dS^T qs is the finished key gradient.
                MulAtB(ds, B, qs + (long)i0 * dp, dp, rowsP, gkAcc, dp, colsP, dp);
            }
            long keyRow = (long)b * g.Tk + j0;
            for (int jj = 0; jj < cols; jj++)
            {
                new ReadOnlySpan<float>(gkAcc + (long)jj * dp, d).CopyTo(new Span<float>(gk + (keyRow + jj) * width + headOff, d));
                new ReadOnlySpan<float>(gvAcc + (long)jj * dp, d).CopyTo(new Span<float>(gv + (keyRow + jj) * width + headOff, d));
            }
        }
        for (int i = 0; i < g.Tq; i++)
        {
            float* dst = gq + ((long)b * g.Tq + i) * width + headOff, src = gqAcc + (long)i * dp;
            for (int c = 0; c < d; c++) dst[c] = src[c] * scale;
        }
    }

    /// <summary>In place: p = exp(s - lse) (0 for keys at or past limit), ds = p (dP - delta).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientRow(float* p, float* ds, int cols, int limit, float rowLse, float delta)
    {
        var vl = Vector512.Create(rowLse);
        var vd = Vector512.Create(delta);
        for (int j = 0; j < cols; j += 16)
        {
            var pj = Vector512.ConditionalSelect(MaskFrom(j, limit), Vector512<float>.Zero, AttentionTiles.Exp(Vector512.Load(p + j) - vl));
            Vector512.Store(pj, p + j);
            Vector512.Store(pj * (Vector512.Load(ds + j) - vd), ds + j);
        }
    }
}
