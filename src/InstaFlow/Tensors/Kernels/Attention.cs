// Fused scaled-dot-product attention, flash style: queries are processed in blocks against packed key blocks with an
// online softmax, so the [Tq, Tk] score matrix is never materialized. Inputs stay in the projection layout [B, T, H*D].
// Small heads (D <= 32) keep the scores key-major, queries along the vector lanes, so no tile is padded to 16 in D.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
    // With query-major scores the P V tile is D floats wide (one or two vectors for D <= 32) and the softmax reduces
    // along a row, horizontally; key-major scores make both products 64 queries wide and the softmax lane-wise.
    private const int MaxKeyMajorHeadDim = 32;
    // The per-block methods are marked AggressiveOptimization: a one-step model calls them only a few times, and at
    // tier 0 the Vector512 code is not inlined and runs several times slower until tiering catches up.

    /// <summary>
    /// Packed key blocks of one call, for each (batch, head, block) two zero-padded parts of Bk x Dp floats:
    /// K^T [D][bk] and V [bk][Dp] (query-major), or K [bk][Dp] and V^T [D rounded to 4][bk] (key-major).
    /// </summary>
    private readonly struct KeyPack(int headDim, int paddedDim, int keyBlock, int blocks)
    {
        public readonly int D = headDim, Dp = paddedDim, Bk = keyBlock, Blocks = blocks;
        public long PartFloats => (long)Bk * Dp;
        public long BlockFloats => 2 * PartFloats;
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
            bool keyMajor = g.HeadDim <= MaxKeyMajorHeadDim;
            Par.For(heads * pack.Blocks, job =>
            {
                int kb = job % pack.Blocks, bh = job / pack.Blocks;
                float* dst = packed + (long)job * pack.BlockFloats;
                PackKeyBlock(g, bh / g.Heads, bh % g.Heads, kb * bk, k, pack.Bk, dst, transposed: !keyMajor, ld: keyMajor ? pack.Dp : pack.Bk);
                PackKeyBlock(g, bh / g.Heads, bh % g.Heads, kb * bk, v, pack.Bk, dst + pack.PartFloats, transposed: keyMajor, ld: keyMajor ? pack.Bk : pack.Dp);
            });
            int qBlocks = (g.Tq + QueryBlock - 1) / QueryBlock;
            Par.For(heads * qBlocks, job =>
            {
                int qb = job % qBlocks, bh = job / qBlocks;
                float* keys = packed + (long)bh * pack.Blocks * pack.BlockFloats;
                if (keyMajor) ForwardBlockKeyMajor(g, pack, keys, q, o, lse, scale, bh, qb * QueryBlock);
                else ForwardBlock(g, pack, keys, q, o, lse, scale, bh, qb * QueryBlock);
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
    /// Copies keys [j0, j0 + bk) of one head, either transposed ([D rounded to 4][ld], for score tiles and
    /// key-major P V) or row-major ([bk][ld], for query-major P V and gradient tiles); rows past Tk and columns past D
    /// are zero so the tiles need no tails.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackKeyBlock(in AttentionShape g, int b, int h, int j0, float* src, int bk, float* dst, bool transposed, int ld)
    {
        int d = g.HeadDim, width = g.Width, n = Math.Min(bk, g.Tk - j0);
        new Span<float>(dst, transposed ? RoundUp(d, Rows) * ld : bk * ld).Clear();
        float* first = src + ((long)b * g.Tk + j0) * width + (long)h * d;
        if (transposed) TransposeRows(first, width, n, d, dst, ld, 1f);
        else PackRows(first, width, d, n, 0, 1f, dst, ld);
    }

    /// <summary>Copies `rows` rows of one head times `mul` into [padRows][ld], zero-filling padRows (0: no fill).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackRows(float* src, long rowStride, int d, int rows, int padRows, float mul, float* dst, int ld)
    {
        new Span<float>(dst, padRows * ld).Clear();
        for (int r = 0; r < rows; r++) CopyScaled(src + r * rowStride, dst + (long)r * ld, d, mul);
    }

    /// <summary>y[0..n) = x[0..n) * mul in whole vectors, a half vector and scalars, never touching past n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyScaled(float* x, float* y, int n, float mul)
    {
        int c = 0;
        var vm = Vector512.Create(mul);
        for (; c + 16 <= n; c += 16) Vector512.Store(Vector512.Load(x + c) * vm, y + c);
        if (c + 8 <= n)
        {
            Vector256.Store(Vector256.Load(x + c) * Vector256.Create(mul), y + c);
            c += 8;
        }
        for (; c < n; c++) y[c] = x[c] * mul;
    }

    /// <summary>
    /// dst[c * dstStride + j] = src[j * srcStride + c] * mul for j &lt; n, c &lt; d. With small heads the scalar
    /// transposes cost as much as the tiles' FMAs, so 8 values of j are gathered per store where AVX2 allows
    /// (.NET has no 512-bit gather).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeRows(float* src, long srcStride, int n, int d, float* dst, long dstStride, float mul)
    {
        int j = 0;
        if (Avx2.IsSupported && srcStride <= int.MaxValue / 8)
        {
            var index = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * (int)srcStride;
            var vm = Vector256.Create(mul);
            for (; j + 8 <= n; j += 8)
                for (int c = 0; c < d; c++)
                    Vector256.Store(Avx2.GatherVector256(src + j * srcStride + c, index, sizeof(float)) * vm, dst + c * dstStride + j);
        }
        for (; j < n; j++)
            for (int c = 0; c < d; c++) dst[c * dstStride + j] = src[j * srcStride + c] * mul;
    }

    /// <summary>
    /// Online-softmax state for a block of queries: the accumulator and row sums zeroed, the running maxima at -inf.
    /// Returns the end of the keys the block's queries see (all of them, or up to its last query when causal).
    /// </summary>
    private static int StartBlock(in AttentionShape g, int i0, int rows, float* acc, int accFloats, float* m, float* l, int stateRows)
    {
        new Span<float>(acc, accFloats).Clear();
        new Span<float>(m, stateRows).Fill(float.NegativeInfinity);
        new Span<float>(l, stateRows).Clear();
        return g.Causal ? Math.Min(g.Tk, i0 + rows) : g.Tk;
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
        int keyEnd = StartBlock(g, i0, rows, acc, rowsP * dp, m, l, rowsP);
        for (int j0 = 0, kb = 0; j0 < keyEnd; j0 += bk, kb++)
        {
            float* kt = keys + kb * pack.BlockFloats, vb = kt + pack.PartFloats;
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
    /// One block of up to 64 queries of one head with key-major scores: S^T = K Q^T [keys][queries], a lane-wise
    /// online softmax down the key rows, and O^T [D][queries] += V^T P^T, transposed into o at the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlockKeyMajor(in AttentionShape g, in KeyPack pack, float* keys, float* q, float* o, float* lse, float scale, int bh, int i0)
    {
        const int Qb = QueryBlock;
        // Shape fields in locals: stores through the float pointers would otherwise make the JIT reload them.
        int b = bh / g.Heads, h = bh % g.Heads, d = g.HeadDim, dr = RoundUp(d, Rows), bk = pack.Bk, width = g.Width;
        int rows = Math.Min(Qb, g.Tq - i0), colsP = RoundUp(rows, 16);
        float* qt = ThreadScratch.Get((long)Qb * (2 * dr + bk + 3));
        float* acc = qt + dr * Qb, st = acc + dr * Qb, m = st + bk * Qb, l = m + Qb, alpha = l + Qb;
        long rowOff = (long)b * g.Tq + i0;
        // Q^T [D][64], scaled so that the tiles hold scaled scores; padding queries are zero and see finite scores.
        new Span<float>(qt, d * Qb).Clear();
        TransposeRows(q + rowOff * width + (long)h * d, width, rows, d, qt, Qb, scale);
        int keyEnd = StartBlock(g, i0, rows, acc, dr * Qb, m, l, Qb);
        for (int j0 = 0, kb = 0; j0 < keyEnd; j0 += bk, kb++)
        {
            float* kn = keys + kb * pack.BlockFloats, vt = kn + pack.PartFloats;
            int n = Math.Min(bk, keyEnd - j0);
            MulABt(kn, pack.Dp, qt, Qb, d, st, Qb, RoundUp(n, Rows), colsP);
            ColumnSoftmax(st, Qb, n, colsP, g.Causal ? i0 - j0 : int.MinValue, m, l, alpha);
            for (int c = 0; c < dr; c++)
                for (int j = 0; j < colsP; j += 16)
                    Vector512.Store(Vector512.Load(acc + c * Qb + j) * Vector512.Load(alpha + j), acc + c * Qb + j);
            MulAB(vt, bk, st, Qb, n, acc, Qb, dr, colsP, null);
        }
        // Normalize O^T lane-wise, then transpose it into the output rows.
        for (int j = 0; j < colsP; j += 16)
        {
            var inv = Vector512<float>.One / Vector512.Load(l + j);
            for (int c = 0; c < d; c++) Vector512.Store(Vector512.Load(acc + c * Qb + j) * inv, acc + c * Qb + j);
        }
        TransposeRows(acc, Qb, d, rows, o + rowOff * width + (long)h * d, width, 1f);
        if (lse != null)
            for (int r = 0; r < rows; r++) lse[(long)bh * g.Tq + i0 + r] = m[r] + MathF.Log(l[r]);
    }

    /// <summary>
    /// Key-major online softmax over n key rows of s (ld floats apart) and cols query lanes: scores become
    /// exp(s - running max), and m, l and alpha (the accumulator's rescale) are updated per query. Causal blocks pass
    /// firstQuery = i0 - j0 (the block's first query relative to its first key): key row j is masked for queries
    /// before it; other blocks pass int.MinValue. Every query sees key 0 in the first block, so the running max is
    /// finite after it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ColumnSoftmax(float* s, int ld, int n, int cols, int firstQuery, float* m, float* l, float* alpha)
    {
        var ninf = Vector512.Create(float.NegativeInfinity);
        for (int c = 0; c < cols; c += 16)
        {
            var mOld = Vector512.Load(m + c);
            // Lane i of this vector is query firstQuery + c + i; key row j is masked where that is below j.
            if (firstQuery != int.MinValue && n - 1 > firstQuery + c)
                for (int j = 0; j < n; j++)
                    Vector512.Store(Vector512.ConditionalSelect(MaskBelow(j - firstQuery - c), ninf, Vector512.Load(s + j * ld + c)), s + j * ld + c);
            var mx = MaxDown(s + c, ld, n, mOld);
            var sum = Vector512<float>.Zero;
            for (int j = 0; j < n; j++)
            {
                var p = AttentionTiles.Exp(Vector512.Load(s + j * ld + c) - mx);
                Vector512.Store(p, s + j * ld + c);
                sum += p;
            }
            var al = AttentionTiles.Exp(mOld - mx);
            Vector512.Store(Vector512.Load(l + c) * al + sum, l + c);
            Vector512.Store(mx, m + c);
            Vector512.Store(al, alpha + c);
        }
    }

    /// <summary>
    /// Lane-wise max of start and n vectors ld floats apart. Its own small method so that the JIT keeps the four
    /// chains in registers (inside ColumnSoftmax they were spilled every key); MaxNative is one vmaxps, where
    /// Vector512.Max's NaN and signed-zero rules cost three dependent instructions per key.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector512<float> MaxDown(float* s, int ld, int n, Vector512<float> start)
    {
        Vector512<float> m0 = start, m1 = start, m2 = start, m3 = start;
        int j = 0;
        for (; j + 4 <= n; j += 4, s += 4 * ld)
        {
            m0 = Vector512.MaxNative(m0, Vector512.Load(s));
            m1 = Vector512.MaxNative(m1, Vector512.Load(s + ld));
            m2 = Vector512.MaxNative(m2, Vector512.Load(s + 2 * ld));
            m3 = Vector512.MaxNative(m3, Vector512.Load(s + 3 * ld));
        }
        for (; j < n; j++, s += ld) m0 = Vector512.MaxNative(m0, Vector512.Load(s));
        return Vector512.MaxNative(Vector512.MaxNative(m0, m1), Vector512.MaxNative(m2, m3));
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
            for (int j = 0; j < cols; j += 16) vmax = Vector512.MaxNative(vmax, Vector512.Load(s + j));
        else
            for (int j = 0; j < cols; j += 16)
            {
                var x = Vector512.ConditionalSelect(MaskFrom(j0 + j, limit), Vector512.Create(float.NegativeInfinity), Vector512.Load(s + j));
                Vector512.Store(x, s + j);
                vmax = Vector512.MaxNative(vmax, x);
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
        int b = bh / g.Heads, h = bh % g.Heads, d = g.HeadDim, dp = RoundUp(d, 16), dr = RoundUp(d, Rows), width = g.Width;
        int tqP = RoundUp(g.Tq, B);
        long headOff = (long)h * d;
        float* qBase = q + (long)b * g.Tq * width + headOff, goBase = go + (long)b * g.Tq * width + headOff;
        float* oBase = o + (long)b * g.Tq * width + headOff;
        float* qs = ThreadScratch.Get(3L * tqP * dp + 2L * tqP + 4L * dr * B + (long)B * dp + 2L * B * B);
        float* dos = qs + (long)tqP * dp, gqAcc = dos + (long)tqP * dp, rowLse = gqAcc + (long)tqP * dp, delta = rowLse + tqP;
        float* kt = delta + tqP, vt = kt + (long)dr * B, kn = vt + (long)dr * B, gkT = kn + (long)B * dp, gvT = gkT + (long)dr * B;
        float* p = gvT + (long)dr * B, ds = p + B * B;

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
            new Span<float>(gkT, dr * B).Clear();
            new Span<float>(gvT, dr * B).Clear();
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
                // The key gradients are summed transposed, [D][keys]: tiles as wide as the key block instead of one
                // or two vectors of D. qs already carries the scale, so qs^T dS is the finished key gradient.
                MulAtB(dos + (long)i0 * dp, dp, p, B, rowsP, gvT, B, dr, colsP);
                MulAtB(qs + (long)i0 * dp, dp, ds, B, rowsP, gkT, B, dr, colsP);
            }
            long keyRow = (long)b * g.Tk + j0;
            TransposeRows(gkT, B, d, cols, gk + keyRow * width + headOff, width, 1f);
            TransposeRows(gvT, B, d, cols, gv + keyRow * width + headOff, width, 1f);
        }
        for (int i = 0; i < g.Tq; i++) CopyScaled(gqAcc + (long)i * dp, gq + ((long)b * g.Tq + i) * width + headOff, d, scale);
    }

    /// <summary>
    /// In place: p = exp(s - lse) (0 for keys at or past limit), ds = p (dP - delta). Not inlined: inside
    /// BackwardHead its vectors were spilled every iteration; rows without masked keys skip the mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GradientRow(float* p, float* ds, int cols, int limit, float rowLse, float delta)
    {
        var vl = Vector512.Create(rowLse);
        var vd = Vector512.Create(delta);
        if (limit >= cols)
        {
            for (int j = 0; j < cols; j += 16)
            {
                var pj = AttentionTiles.Exp(Vector512.Load(p + j) - vl);
                Vector512.Store(pj, p + j);
                Vector512.Store(pj * (Vector512.Load(ds + j) - vd), ds + j);
            }
            return;
        }
        for (int j = 0; j < cols; j += 16)
        {
            var pj = Vector512.ConditionalSelect(MaskFrom(j, limit), Vector512<float>.Zero, AttentionTiles.Exp(Vector512.Load(p + j) - vl));
            Vector512.Store(pj, p + j);
            Vector512.Store(pj * (Vector512.Load(ds + j) - vd), ds + j);
        }
    }
}
