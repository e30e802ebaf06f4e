// Fast SGEMM entry point (row-major, BLAS semantics), BLIS-style: A packed once into MR-row panels, each task packs
// its own KC x NT block of B and runs 6x32 micro-kernels. Tasks are fixed tiles of C chosen from the shape alone and
// each element is summed in one fixed K order, so results are identical for any thread count.
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Gemm
{
    /// <summary>Widest B block per task: KC x 512 floats (512 KiB) leaves half of the 1 MiB L2 for A and C.</summary>
    private const int MaxTileN = 512;
    private const int MR = GemmKernels.MR, NR = GemmKernels.NR;

    [ThreadStatic] private static nint _bBlock;

    /// <summary>C = alpha * op(A) * op(B) + beta * C (beta 0 means C is not read).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"Sgemm: negative size m={m} n={n} k={k}");
        if (m == 0 || n == 0) return;
        if (k == 0) { ScaleC(m, n, beta, c, ldc); return; }
        // Below these sizes packing costs more than it saves: B would be packed for fewer than 16 rows of A.
        if (m < 16 || n < 16) { GemmSmall.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return; }
        var buf = NativeBuffer.Rent(GemmPacking.PackedASize(m, k) * sizeof(float));
        try
        {
            float* ap = (float*)buf.Pointer;
            GemmPacking.PackA(transA, a, lda, m, k, alpha, ap);
            Run(m, n, k, ap, new DenseSource(b, ldb, transB), beta, null, c, ldc);
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

    /// <summary>
    /// C (m x n) = packedA * op(B) (+ bias[row]) (+ beta * C), op(B) supplied panel by panel by source.
    /// packedA is laid out by <see cref="GemmPacking.PackA"/>; k must be positive.
    /// </summary>
    internal static void Run<TSource>(int m, int n, int k, float* packedA, TSource source, float beta, float* bias, float* c, long ldc)
        where TSource : struct, IPanelSource
    {
        var kb = new KBlocks(k);
        PlanTiles(m, n, k, out int tileM, out int tileN);
        int tilesM = (m + tileM - 1) / tileM, tilesN = (n + tileN - 1) / tileN;
        int panelsA = (m + MR - 1) / MR;
        Par.For(tilesM * tilesN, t =>
        {
            int i0 = t / tilesN * tileM, j0 = t % tilesN * tileN;
            int rows = Math.Min(tileM, m - i0), cols = Math.Min(tileN, n - j0);
            float* bb = BBlock();
            for (int blk = 0; blk < kb.Count; blk++)
            {
                int k0 = kb.Start(blk), kc = kb.Length(blk);
                for (int jp = 0; jp < cols; jp += NR)
                    source.PackPanel(k0, kc, j0 + jp, Math.Min(NR, cols - jp), bb + (long)jp * kc);
                // Later K blocks accumulate onto what the first one stored (beta 1, no bias).
                float bt = blk == 0 ? beta : 1f;
                float* bs = blk == 0 ? bias : null;
                float* aBlock = packedA + (long)panelsA * MR * k0;
                for (int ip = 0; ip < rows; ip += MR)
                {
                    int i = i0 + ip;
                    float* ap = aBlock + (long)(i / MR) * MR * kc;
                    float* ci = c + i * ldc + j0;
                    int mr = Math.Min(MR, m - i);
                    for (int jp = 0; jp < cols; jp += NR)
                        GemmKernels.Tile(kc, ap, bb + (long)jp * kc, ci + jp, ldc, mr, Math.Min(NR, cols - jp), bt, bs == null ? null : bs + i);
                }
            }
        });
    }

    /// <summary>
    /// Tile sizes from the shape only (never the thread count): enough tasks to balance two busy cores, split N first
    /// down to 256 columns, then M down to 96 rows, then N down to 64.
    /// </summary>
    private static void PlanTiles(int m, int n, int k, out int tileM, out int tileN)
    {
        tileM = GemmPacking.RoundUp(m, MR);
        tileN = Math.Min(MaxTileN, GemmPacking.RoundUp(n, NR));
        long target = Math.Clamp(2L * m * n * k / 10_000_000, 1, 16);
        while (Tasks(m, n, tileM, tileN) < target)
        {
            if (tileN > 256) tileN /= 2;
            else if (tileM >= 192) tileM = GemmPacking.RoundUp(tileM / 2, MR);
            else if (tileN > 64) tileN /= 2;
            else break;
        }
    }

    private static long Tasks(int m, int n, int tileM, int tileN) => (long)((m + tileM - 1) / tileM) * ((n + tileN - 1) / tileN);

    /// <summary>This thread's B block (KC x MaxTileN floats), allocated once and kept for the thread's life.</summary>
    private static float* BBlock()
    {
        if (_bBlock == 0) _bBlock = (nint)NativeMemory.AlignedAlloc((nuint)KBlocks.KC * MaxTileN * sizeof(float), NativeBuffer.Alignment);
        return (float*)_bBlock;
    }
}
