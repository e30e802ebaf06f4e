// Fast SGEMM entry point (row-major, BLAS semantics), BLIS-style: A (and a dense B) packed once into panels, or a
// row-major A read in place where that pays, then tasks run 6x32 micro-kernels over tiles of C chosen from the shape
// alone. Each element is summed in one fixed K order, so results are identical for any thread count and either A.
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Gemm
{
    /// <summary>Largest task tile: the A block (252 x KC, 252 KiB) stays in the 1 MiB L2 while B panels pass through L1.</summary>
    private const int MaxTileM = 252, MaxTileN = 256;
    private const int MR = GemmKernels.MR, NR = GemmKernels.NR;

    [ThreadStatic] private static nint _bPanel;

    /// <summary>C = alpha * op(A) * op(B) + beta * C (beta 0 means C is not read).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"Sgemm: negative size m={m} n={n} k={k}");
        if (m == 0 || n == 0) return;
        if (k == 0) { ScaleC(m, n, beta, c, ldc); return; }
        // Below these sizes packing costs more than it saves: B would be packed for fewer than 16 rows of A.
        if (m < 16 || n < 16) { GemmSmall.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return; }
        if (!transA && alpha == 1f && ReadAInPlace(m))
        {
            RunDense(m, n, k, new RowMajorA(a, lda), new DenseSource(b, ldb, transB), beta, null, c, ldc);
            return;
        }
        if (transA && alpha == 1f && ReadTransposedAInPlace(m))
        {
            RunDense(m, n, k, new TransposedA(a, lda), new DenseSource(b, ldb, transB), beta, null, c, ldc);
            return;
        }
        var buf = NativeBuffer.Rent(GemmPacking.PackedSize(m, k, MR) * sizeof(float));
        try
        {
            float* ap = (float*)buf.Pointer;
            GemmPacking.PackA(transA, a, lda, m, k, alpha, ap);
            RunDense(m, n, k, ap, new DenseSource(b, ldb, transB), beta, null, c, ldc);
        }
        finally { buf.Release(); }
    }

    /// <summary>
    /// C = A * B^T (+ colBias[column]) + beta * C with B (n x k, row-major) a Linear weight in its stored precision
    /// (F32, or F16/BF16 widened while its panels are packed: the products equal those of the widened weight).
    /// </summary>
    /// <remarks>
    /// prepackedB, when not null, is b already packed by <see cref="PackStoredBT"/> (a <see cref="WeightPack"/>); it is
    /// used only where this call would pack b itself (m and n of at least 16), so the products are the same.
    /// colBias (n floats, with beta 0) gives the bits of C filled with it and beta 1, without a pass over C for it.
    /// </remarks>
    internal static void SgemmStoredBT(int m, int n, int k, float* a, int lda, StoredData b, int ldb, float beta, float* c, int ldc,
        float* prepackedB = null, float* colBias = null)
    {
        if (m <= 0 || n <= 0 || k <= 0) throw new ArgumentException($"SgemmStoredBT: sizes must be positive, got m={m} n={n} k={k}");
        if (colBias != null && beta != 0) throw new ArgumentException("SgemmStoredBT: a column bias takes beta 0");
        if (m < 16 || n < 16)
        {
            if (colBias != null)
            {
                for (int i = 0; i < m; i++) Buffer.MemoryCopy(colBias, c + (long)i * ldc, n * 4L, n * 4L);
                beta = 1f;
            }
            if (b.DType == TensorDType.F32) { GemmSmall.Sgemm(false, true, m, n, k, 1f, a, lda, b.Float32, ldb, beta, c, ldc); return; }
            // Too few rows to pack for: widen the weight once (a time or pooled-text embedding, at most a few MB).
            var wide = NativeBuffer.Rent((long)n * k * sizeof(float));
            try
            {
                float* w = (float*)wide.Pointer;
                for (int j = 0; j < n; j++) b.Widen((long)j * ldb, w + (long)j * k, k);
                GemmSmall.Sgemm(false, true, m, n, k, 1f, a, lda, w, k, beta, c, ldc);
            }
            finally { wide.Release(); }
            return;
        }
        if (ReadAInPlace(m))
        {
            RunStoredBT(m, n, k, new RowMajorA(a, lda), b, ldb, beta, c, ldc, prepackedB, colBias);
            return;
        }
        var buf = NativeBuffer.Rent(GemmPacking.PackedSize(m, k, MR) * sizeof(float));
        try
        {
            float* ap = (float*)buf.Pointer;
            GemmPacking.PackA(false, a, lda, m, k, 1f, ap);
            RunStoredBT(m, n, k, new PackedA(ap, m), b, ldb, beta, c, ldc, prepackedB, colBias);
        }
        finally { buf.Release(); }
    }

    /// <summary>
    /// Whether an unscaled row-major A is read in place by the micro-kernel instead of packed first: from 256 rows,
    /// where the saved pass over A outweighs the in-place loop's ~5 % (six row streams). With the weight packed once,
    /// 2 threads, in place against packed: 4096 x 320 -> 320 0.64-0.83x, 4096 x 1280 -> 320 0.80x, 1024 x 640 -> 5120
    /// 0.91-0.94x, 4096 x 320 -> 2560 and 256 x 1280 -> 10240 level; a prompt's 77 rows level or 1.12x slower.
    /// </summary>
    internal static bool ReadAInPlace(int m) => m >= 256;

    /// <summary>
    /// Whether an unscaled transposed A (the weight gradients' g^T) is read in place: each step along K reads MR
    /// neighbouring floats of one row of the stored A, so no pass packs it. From 128 rows of C: Linear weight
    /// gradients (2 threads, split along K) 8192 x 64 -> 512 0.56-0.71x the packed path's time, 2048 x 128 -> 1024
    /// 0.77-0.92x, 2048 x 128 -> 128 0.68-0.76x; with 64 rows 1.2-1.8x slower (8192 x 64 -> 64, 8192 x 256 -> 64).
    /// </summary>
    internal static bool ReadTransposedAInPlace(int m) => m >= 128;

    private static void RunStoredBT<TA>(int m, int n, int k, TA a, StoredData b, int ldb, float beta, float* c, int ldc, float* prepackedB,
        float* colBias)
        where TA : struct, IAOperand
    {
        if (prepackedB != null)
        {
            Run(m, n, k, a, new PackedSource(prepackedB, n), beta, null, c, ldc, colBias);
            return;
        }
        // The packed weight goes to the shared packed-weights buffer, not the pool (see PackArena).
        var packedB = PackArena.Rent(GemmPacking.PackedSize(n, k, NR) * sizeof(float));
        try
        {
            float* bp = (float*)packedB.Pointer;
            PackStoredBT(b, ldb, n, k, bp);
            Ops.InferenceMark("Linear: packing the weight");
            Run(m, n, k, a, new PackedSource(bp, n), beta, null, c, ldc, colBias);
        }
        finally { packedB.Release(); }
    }

    /// <summary>Packs a Linear weight b (n x k, row-major, stored precision) as op(B) = b^T panels: GemmPacking.PackedSize(n, k, NR) floats.</summary>
    internal static void PackStoredBT(StoredData b, int ldb, int n, int k, float* dst)
    {
        if (b.DType == TensorDType.F32) GemmPacking.PackB(new DenseSource(b.Float32, ldb, true), n, k, dst);
        else GemmPacking.PackB(new StoredTransposedSource(b, ldb), n, k, dst);
    }

    /// <summary>Run with a dense B packed once up front: cheaper than packing it again in every M tile.</summary>
    internal static void RunDense(int m, int n, int k, float* packedA, DenseSource b, float beta, float* bias, float* c, long ldc) =>
        RunDense(m, n, k, new PackedA(packedA, m), b, beta, bias, c, ldc);

    /// <summary>
    /// Largest packed chunk of a dense B: B is packed and multiplied a chunk of columns at a time, so each packed chunk
    /// is read back from the cache, not from memory.
    /// </summary>
    internal static long DenseChunkBytes = 4L << 20;

    private static void RunDense<TA>(int m, int n, int k, TA a, DenseSource b, float beta, float* bias, float* c, long ldc)
        where TA : struct, IAOperand
    {
        int chunk = (int)Math.Clamp(DenseChunkBytes / ((long)k * sizeof(float)) / NR * NR, NR, GemmPacking.RoundUp(n, NR));
        var buf = NativeBuffer.Rent(GemmPacking.PackedSize(Math.Min(chunk, n), k, NR) * sizeof(float));
        try
        {
            // the panels and each element's K order are those of B packed whole, so the results are too
            for (int j0 = 0; j0 < n; j0 += chunk)
            {
                int cn = Math.Min(chunk, n - j0);
                GemmPacking.PackB(b.Columns(j0), cn, k, (float*)buf.Pointer);
                Run(m, cn, k, a, new PackedSource((float*)buf.Pointer, cn), beta, bias, c + j0, ldc);
            }
        }
        finally { buf.Release(); }
    }

    private static void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            if (beta == 0) new Span<float>(c + (long)i * ldc, n).Clear();
            else Blas.Scale(beta, c + (long)i * ldc, n);
        }
    }

    /// <summary>Largest B that <see cref="RunSharingB"/> packs up front: a 1280-channel 3x3 conv's patches at 16x16 take 11.3 MiB.</summary>
    internal const long SharedBBytes = 32L << 20;

    /// <summary>
    /// <see cref="Run{TA, TSource}"/>, but when the plan splits M into several tiles, each of which would pack the same B panels
    /// again (a 1280-channel conv at 16x16 packed its patches 12 times), and packed B takes at most SharedBBytes, B is
    /// packed once up front. The panels are the same either way, and so are the results.
    /// </summary>
    internal static void RunSharingB<TSource>(int m, int n, int k, float* packedA, TSource source, float beta, float* bias, float* c, long ldc)
        where TSource : struct, IPanelSource
    {
        long bytes = GemmPacking.PackedSize(n, k, NR) * sizeof(float);
        if (PlannedTileM(m, n, k) >= m || bytes > SharedBBytes)
        {
            Run(m, n, k, packedA, source, beta, bias, c, ldc);
            return;
        }
        var buf = NativeBuffer.Rent(bytes);
        try
        {
            GemmPacking.PackB(source, n, k, (float*)buf.Pointer);
            Run(m, n, k, packedA, new PackedSource((float*)buf.Pointer, n), beta, bias, c, ldc);
        }
        finally { buf.Release(); }
    }

    /// <summary>
    /// C (m x n) = packedA * op(B) (+ bias[row]) (+ beta * C), op(B) supplied panel by panel by source.
    /// packedA is laid out by <see cref="GemmPacking.PackA(bool, float*, int, int, int, float, float*)"/>; k must be positive.
    /// </summary>
    internal static void Run<TSource>(int m, int n, int k, float* packedA, TSource source, float beta, float* bias, float* c, long ldc)
        where TSource : struct, IPanelSource =>
        Run(m, n, k, new PackedA(packedA, m), source, beta, bias, c, ldc);

    /// <summary>
    /// The same with A packed or read in place (<see cref="IAOperand"/>). colBias (n floats, beta 0) is written into
    /// each micro-tile of C just before its first product lands there with beta 1: the bits of a C filled with it
    /// beforehand, without that extra pass over C (a 4096 x 2560 Linear output is 42 MB).
    /// </summary>
    internal static void Run<TA, TSource>(int m, int n, int k, TA a, TSource source, float beta, float* bias, float* c, long ldc,
        float* colBias = null)
        where TA : struct, IAOperand where TSource : struct, IPanelSource
    {
        var kb = new KBlocks(k);
        PlanTiles(m, n, k, out int tileM, out int tileN);
        int tilesM = (m + tileM - 1) / tileM, tilesN = (n + tileN - 1) / tileN;
        Par.For(tilesM * tilesN, t =>
        {
            int i0 = t / tilesN * tileM, j0 = t % tilesN * tileN;
            int rows = Math.Min(tileM, m - i0), cols = Math.Min(tileN, n - j0);
            float* scratch = BPanel();
            for (int blk = 0; blk < kb.Count; blk++)
            {
                int k0 = kb.Start(blk), kc = kb.Length(blk);
                // Later K blocks accumulate onto what the first one stored (beta 1, no bias).
                bool fill = blk == 0 && colBias != null;
                float bt = blk == 0 && !fill ? beta : 1f;
                float* bs = blk == 0 ? bias : null;
                // Each B panel is packed (or found) and used at once from L1 against the whole A block, which stays in L2.
                for (int jp = 0; jp < cols; jp += NR)
                {
                    int nr = Math.Min(NR, cols - jp);
                    float* bpanel = source.Panel(k0, kc, j0 + jp, nr, scratch);
                    for (int ip = 0; ip < rows; ip += MR)
                    {
                        int i = i0 + ip, mr = Math.Min(MR, m - i);
                        float* ct = c + i * ldc + j0 + jp;
                        if (fill)
                            for (int r = 0; r < mr; r++) Buffer.MemoryCopy(colBias + j0 + jp, ct + r * ldc, nr * 4L, nr * 4L);
                        a.Tile(i, k0, kc, bpanel, ct, ldc, mr, nr, bt, bs == null ? null : bs + i);
                    }
                }
            }
        });
    }

    /// <summary>
    /// Tile sizes from the shape only (never the thread count). A task's A block (tileM x KC) must stay in L2 while
    /// every B panel of the tile runs against it; then, for balance on two busy cores, tiles are split until there
    /// are enough tasks: N down to 128 columns, then M down to 96 rows, then N down to 64.
    /// </summary>
    private static void PlanTiles(int m, int n, int k, out int tileM, out int tileN)
    {
        tileM = Balanced(m, MaxTileM, MR);
        tileN = Balanced(n, MaxTileN, NR);
        long target = Math.Clamp(2L * m * n * k / 10_000_000, 1, 16);
        while (Tasks(m, n, tileM, tileN) < target)
        {
            if (tileN > 128) tileN = Balanced(n, tileN / 2, NR);
            else if (tileM >= 192) tileM = Balanced(m, tileM / 2, MR);
            else if (tileN > 64) tileN = Balanced(n, tileN / 2, NR);
            else break;
        }
    }

    /// <summary>Rows per task tile that <see cref="Run{TA, TSource}"/> plans for this shape.</summary>
    internal static int PlannedTileM(int m, int n, int k)
    {
        PlanTiles(m, n, k, out int tileM, out _);
        return tileM;
    }

    /// <summary>Equal tiles of at most max (rounded up to a multiple of unit) covering size.</summary>
    private static int Balanced(int size, int max, int unit)
    {
        int tiles = (size + max - 1) / max;
        return Math.Min(GemmPacking.RoundUp((size + tiles - 1) / tiles, unit), GemmPacking.RoundUp(max, unit));
    }

    private static long Tasks(int m, int n, int tileM, int tileN) => (long)((m + tileM - 1) / tileM) * ((n + tileN - 1) / tileN);

    /// <summary>This thread's B panel (KC x NR floats), allocated once and kept for the thread's life.</summary>
    private static float* BPanel()
    {
        if (_bPanel == 0) _bPanel = (nint)NativeMemory.AlignedAlloc((nuint)KBlocks.KC * NR * sizeof(float), NativeBuffer.Alignment);
        return (float*)_bPanel;
    }
}

/// <summary>The A operand of <see cref="Gemm.Run{TA, TSource}"/>: how a micro-tile starting at row i reads K block (k0, kc).</summary>
internal unsafe interface IAOperand
{
    void Tile(int i, int k0, int kc, float* bPanel, float* c, long ldc, int mr, int nr, float beta, float* bias);
}

/// <summary>A packed by <see cref="GemmPacking.PackA(bool, float*, int, int, int, float, float*)"/> (m rows).</summary>
internal readonly unsafe struct PackedA(float* packed, int m) : IAOperand
{
    public void Tile(int i, int k0, int kc, float* bPanel, float* c, long ldc, int mr, int nr, float beta, float* bias) =>
        GemmKernels.Tile(kc, packed + GemmPacking.PanelOffset(m, GemmKernels.MR, k0, kc, i), bPanel, c, ldc, mr, nr, beta, bias);
}

/// <summary>A row-major (element (i, p) at a[i * lda + p]), read in place.</summary>
internal readonly unsafe struct RowMajorA(float* a, long lda) : IAOperand
{
    public void Tile(int i, int k0, int kc, float* bPanel, float* c, long ldc, int mr, int nr, float beta, float* bias) =>
        GemmKernels.TileInPlaceA(kc, a + i * lda + k0, lda, 1, bPanel, c, ldc, mr, nr, beta, bias);
}

/// <summary>A stored transposed (element (i, p) at a[p * lda + i]: op(A) of a transA call), read in place.</summary>
internal readonly unsafe struct TransposedA(float* a, long lda) : IAOperand
{
    public void Tile(int i, int k0, int kc, float* bPanel, float* c, long ldc, int mr, int nr, float beta, float* bias) =>
        GemmKernels.TileInPlaceA(kc, a + k0 * lda + i, 1, lda, bPanel, c, ldc, mr, nr, beta, bias);
}
