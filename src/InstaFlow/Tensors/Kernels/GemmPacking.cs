// Packing of GEMM operands into the micro-kernel's panel layouts: A as MR-row panels (k-major, alpha folded in),
// B as NR-column panels from any source (a dense matrix here, image patches in Conv2dPatches).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tensors.Kernels;

/// <summary>
/// Supplies one NR-wide B panel, p[p * NR + j] = op(B)[k0 + p, j0 + j] for j &lt; cols and 0 for cols &lt;= j &lt; NR:
/// either packed into scratch (KC x NR floats) or found already packed.
/// </summary>
internal unsafe interface IPanelSource
{
    float* Panel(int k0, int kc, int j0, int cols, float* scratch);
}

/// <summary>A dense row-major B (or B^T when Trans): element (p, j) is b[p * ldb + j] (or b[j * ldb + p]).</summary>
internal readonly unsafe struct DenseSource(float* b, int ldb, bool trans) : IPanelSource
{
    /// <summary>The same B from column j0 on.</summary>
    public DenseSource Columns(int j0) => new(trans ? b + (long)j0 * ldb : b + j0, ldb, trans);

    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        if (!trans)
        {
            for (int p = 0; p < kc; p++)
            {
                float* s = b + (long)(k0 + p) * ldb + j0, d = dst + p * NR;
                if (cols == NR) Unsafe.CopyBlockUnaligned(d, s, NR * sizeof(float));
                else
                {
                    Unsafe.CopyBlockUnaligned(d, s, (uint)cols * sizeof(float));
                    new Span<float>(d + cols, NR - cols).Clear();
                }
            }
            return dst;
        }
        int p0 = 0;
        // Full panels go through 8x8 register transposes; the scalar loop takes the K tail and partial panels.
        if (cols == NR && GemmKernels.Isa != GemmIsa.Scalar && Avx.IsSupported)
            for (; p0 + 8 <= kc; p0 += 8)
                for (int jb = 0; jb < NR; jb += 8)
                    Transpose8x8(b + (long)(j0 + jb) * ldb + k0 + p0, ldb, dst + p0 * NR + jb, NR);
        for (int j = 0; j < cols; j++)
        {
            float* s = b + (long)(j0 + j) * ldb + k0, d = dst + j;
            for (int p = p0; p < kc; p++) d[p * NR] = s[p];
        }
        if (cols < NR)
            for (int p = 0; p < kc; p++) new Span<float>(dst + p * NR + cols, NR - cols).Clear();
        return dst;
    }

    /// <summary>dst row i (stride ldd) = column i of the 8x8 block at src (row stride lds).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(float* src, long lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds); var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds); var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds); var r7 = Avx.LoadVector256(src + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // Each 128-bit lane now holds rows 0-3 (u0-u3) or 4-7 (u4-u7) of columns c and c + 4.
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }
}

/// <summary>
/// B^T stored in reduced precision (a Linear weight [N, K] kept F16/BF16): each panel's NR rows are widened into a
/// scratch block, then transposed as <see cref="DenseSource"/> does, so panels equal those of the widened matrix.
/// </summary>
internal readonly unsafe struct StoredTransposedSource(StoredData b, int ldb) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        float* rows = stackalloc float[GemmKernels.NR * KBlocks.KC];
        for (int j = 0; j < cols; j++) b.Widen((long)(j0 + j) * ldb + k0, rows + j * kc, kc);
        return new DenseSource(rows, kc, trans: true).Panel(0, kc, 0, cols, dst);
    }
}

/// <summary>B already packed by <see cref="GemmPacking.PackB"/>: panels are found, not copied.</summary>
internal readonly unsafe struct PackedSource(float* packed, int n) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* scratch) =>
        packed + GemmPacking.PanelOffset(n, GemmKernels.NR, k0, kc, j0);
}

/// <summary>K split into equal blocks of at most KC, so a B block (KC x tile width) stays in L2.</summary>
internal readonly struct KBlocks
{
    public const int KC = 256;
    public readonly int Count, Size, K;

    public KBlocks(int k)
    {
        K = k;
        Count = Math.Max(1, (k + KC - 1) / KC);
        Size = (k + Count - 1) / Count;
    }

    public int Start(int b) => b * Size;
    public int Length(int b) => Math.Min(Size, K - b * Size);
}

internal static unsafe class GemmPacking
{
    /// <summary>Floats needed to hold an m x k operand packed in panels of width: whole panels, every K block.</summary>
    public static long PackedSize(int m, int k, int width) => (long)RoundUp(m, width) * k;

    /// <summary>Where the panel holding row/column i0 of K block (k0, kc) starts: blocks in K order, panels inside.</summary>
    public static long PanelOffset(int size, int width, int k0, int kc, int i0) => (long)RoundUp(size, width) * k0 + (long)i0 * kc;

    /// <summary>Packs op(B) (k x n) once, for GEMMs whose M tiles would otherwise each pack it again.</summary>
    public static void PackB<TSource>(TSource source, int n, int k, float* dst) where TSource : struct, IPanelSource
    {
        const int NR = GemmKernels.NR;
        var kb = new KBlocks(k);
        int panels = (n + NR - 1) / NR;
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            for (int jp = (int)p0; jp < p1; jp++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk), j0 = jp * NR;
                    source.Panel(k0, kc, j0, Math.Min(NR, n - j0), dst + PanelOffset(n, NR, k0, kc, j0));
                }
        });
    }

    public static int RoundUp(int x, int to) => (x + to - 1) / to * to;

    /// <summary>
    /// Packs alpha * op(A) so that K block b's panel ir starts at dst + panels * MR * start(b) + ir * MR * length(b),
    /// element (i, p) at [p * MR + i]; rows past m are zero.
    /// </summary>
    public static void PackA(bool transA, float* a, int lda, int m, int k, float alpha, float* dst)
    {
        const int MR = GemmKernels.MR;
        int panels = (m + MR - 1) / MR;
        var kb = new KBlocks(k);
        bool rowsFirst = transA && GemmKernels.Isa != GemmIsa.Scalar && Sse.IsSupported;
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            if (rowsFirst)
            {
                // A transposed (a Linear weight gradient's g^T): walk A's rows once, each row giving six contiguous
                // floats to every full panel of the range. Packing panel by panel walked all the rows once per
                // column of A, which made those GEMMs up to three times slower than untransposed ones. A partial
                // last panel goes through the plain loop below.
                int full = (int)Math.Min(p1, m / MR);
                var scale = Vector128.Create(alpha);
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk);
                    float* blockDst = dst + PanelOffset(m, MR, k0, kc, 0);
                    for (int p = 0; p < kc; p++)
                    {
                        float* row = a + (long)(k0 + p) * lda;
                        for (int ir = (int)p0; ir < full; ir++)
                        {
                            float* s = row + ir * MR, o = blockDst + (long)ir * MR * kc + p * MR;
                            Sse.Store(o, Sse.LoadVector128(s) * scale);
                            o[4] = alpha * s[4];
                            o[5] = alpha * s[5];
                        }
                    }
                }
                p0 = Math.Max(p0, full);
            }
            for (int ir = (int)p0; ir < p1; ir++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk);
                    float* block = transA ? a + (long)k0 * lda + ir * MR : a + (long)ir * MR * lda + k0;
                    PackPanel(transA, block, lda, Math.Min(MR, m - ir * MR), kc, alpha, dst + PanelOffset(m, MR, k0, kc, ir * MR));
                }
        });
    }

    /// <summary>
    /// <see cref="PackA(bool, float*, int, int, int, float, float*)"/> (not transposed, alpha 1) of the m x (images * ld)
    /// matrix whose row i is row i of every image in turn, a[b * imageStride + i * ld ..] for b = 0, 1, ...: a conv's
    /// output gradient [image, channel, position] as the weight gradient's A, packed where it lies instead of copied
    /// into one matrix first. The packed floats are the same.
    /// </summary>
    public static void PackARowsPerImage(float* a, long imageStride, int ld, int images, int m, float* dst)
    {
        const int MR = GemmKernels.MR;
        int panels = (m + MR - 1) / MR;
        var kb = new KBlocks(images * ld);
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            for (int ir = (int)p0; ir < p1; ir++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk);
                    float* d = dst + PanelOffset(m, MR, k0, kc, ir * MR);
                    // the K block in runs that stay inside one image
                    for (int p = k0; p < k0 + kc;)
                    {
                        int b = p / ld, off = p - b * ld, n = Math.Min(ld - off, k0 + kc - p);
                        PackPanel(false, a + b * imageStride + (long)ir * MR * ld + off, ld, Math.Min(MR, m - ir * MR), n, 1f, d + (long)(p - k0) * MR);
                        p += n;
                    }
                }
        });
    }

    /// <summary>
    /// <see cref="PackA(bool, float*, int, int, int, float, float*)"/> for a row-major A in its stored precision (weights kept F16/BF16): each MR x kc block is
    /// widened into a scratch block first, so the result equals packing the widened matrix.
    /// </summary>
    public static void PackA(StoredData a, int lda, int m, int k, float* dst)
    {
        if (a.DType == TensorDType.F32) { PackA(false, a.Float32, lda, m, k, 1f, dst); return; }
        const int MR = GemmKernels.MR;
        int panels = (m + MR - 1) / MR;
        var kb = new KBlocks(k);
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            float* scratch = stackalloc float[MR * KBlocks.KC];
            for (int ir = (int)p0; ir < p1; ir++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk), rows = Math.Min(MR, m - ir * MR);
                    for (int i = 0; i < rows; i++) a.Widen((long)(ir * MR + i) * lda + k0, scratch + i * kc, kc);
                    PackPanel(false, scratch, kc, rows, kc, 1f, dst + PanelOffset(m, MR, k0, kc, ir * MR));
                }
        });
    }

    /// <summary>One MR-row panel of one K block; block is A's element (panel row 0, k0); rows past `rows` are zero.</summary>
    private static void PackPanel(bool transA, float* block, long lda, int rows, int kc, float alpha, float* d)
    {
        const int MR = GemmKernels.MR;
        int done = 0;
        if (!transA && rows == MR && GemmKernels.Isa != GemmIsa.Scalar && Sse.IsSupported)
            done = PackRows6(block, lda, kc, alpha, d);

        for (int i = 0; i < MR; i++)
        {
            if (i >= rows)
            {
                for (int p = done; p < kc; p++) d[p * MR + i] = 0f;
                continue;
            }
            long step = transA ? lda : 1;
            float* s = transA ? block + i : block + i * lda;
            for (int p = done; p < kc; p++) d[p * MR + i] = alpha * s[p * step];
        }
    }

    /// <summary>
    /// Interleaves six contiguous rows four columns at a time (a 4x4 transpose plus a pair of rows), the costly
    /// case for wide-K, narrow-N GEMMs; returns how many columns it packed.
    /// </summary>
    private static int PackRows6(float* a, long lda, int kc, float alpha, float* d)
    {
        const int MR = GemmKernels.MR;
        var scale = Vector128.Create(alpha);
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            float* s = a + p;
            var r0 = Sse.LoadVector128(s) * scale; var r1 = Sse.LoadVector128(s + lda) * scale;
            var r2 = Sse.LoadVector128(s + 2 * lda) * scale; var r3 = Sse.LoadVector128(s + 3 * lda) * scale;
            var r4 = Sse.LoadVector128(s + 4 * lda) * scale; var r5 = Sse.LoadVector128(s + 5 * lda) * scale;
            var t0 = Sse.UnpackLow(r0, r1); var t1 = Sse.UnpackHigh(r0, r1);
            var t2 = Sse.UnpackLow(r2, r3); var t3 = Sse.UnpackHigh(r2, r3);
            var e0 = Sse.UnpackLow(r4, r5); var e1 = Sse.UnpackHigh(r4, r5);
            float* o = d + p * MR;
            Sse.Store(o, Sse.MoveLowToHigh(t0, t2)); Sse.StoreLow(o + 4, e0);
            Sse.Store(o + MR, Sse.MoveHighToLow(t2, t0)); Sse.StoreHigh(o + MR + 4, e0);
            Sse.Store(o + 2 * MR, Sse.MoveLowToHigh(t1, t3)); Sse.StoreLow(o + 2 * MR + 4, e1);
            Sse.Store(o + 3 * MR, Sse.MoveHighToLow(t3, t1)); Sse.StoreHigh(o + 3 * MR + 4, e1);
        }
        return p;
    }
}
