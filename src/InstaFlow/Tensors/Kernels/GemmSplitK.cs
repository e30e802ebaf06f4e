// C = A^T B for the weight gradients of linear layers and matmuls: a small C over a long K (every row of a batch),
// cut along K into chunks that run in parallel into partial sums, added in chunk order afterwards.
namespace InstaFlow.Tensors.Kernels;

internal static unsafe class GemmSplitK
{
    /// <summary>Rows of K per chunk: long enough that a chunk's GEMM amortizes its packing.</summary>
    internal const int ChunkRows = 2048;

    /// <summary>Partial sums beyond C itself are capped at this many floats (a large C has tiles enough to split).</summary>
    private const long MaxPartialFloats = 1 << 22;

    /// <summary>
    /// C (m x n, ldc n) = op(A) B with A [k x m] (transA, the weight gradient g^T x) or [m x k], and B [k x n] (transB
    /// false) or [n x k]. The chunks depend on the shape only, so the result is the same for any thread count.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c)
    {
        long size = (long)m * n;
        int chunks = (int)Math.Clamp(Math.Min(k / ChunkRows, MaxPartialFloats / Math.Max(1, size) + 1), 1, 16);
        if (chunks == 1)
        {
            Gemm.Sgemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
            return;
        }
        int per = (k + chunks - 1) / chunks;
        var partials = NativeBuffer.Rent((chunks - 1) * size * sizeof(float));
        try
        {
            float* p = (float*)partials.Pointer;
            Par.For(chunks, ch =>
            {
                int k0 = ch * per, kc = Math.Min(per, k - k0);
                float* dst = ch == 0 ? c : p + (ch - 1) * size;
                // K runs down A's rows when transposed (along them otherwise), and down B's rows unless it is transposed
                float* ak = transA ? a + (long)k0 * lda : a + k0;
                float* bk = transB ? b + k0 : b + (long)k0 * ldb;
                Gemm.Sgemm(transA, transB, m, n, kc, 1f, ak, lda, bk, ldb, 0f, dst, n);
            });
            for (int ch = 1; ch < chunks; ch++) Blas.Axpy(1f, p + (ch - 1) * size, c, size);
        }
        finally { partials.Release(); }
    }
}
