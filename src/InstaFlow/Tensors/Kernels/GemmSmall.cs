// SGEMM for thin shapes (m or n below 16) without packing: rows of C built by axpy over rows of B, or by dot
// products when B is transposed. Fixed tiles of C, fixed K order per element: thread-count independent.
namespace InstaFlow.Tensors.Kernels;

internal static unsafe class GemmSmall
{
    private const int RowBlock = 16, ColBlock = 2048;

    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        int rowBlocks = (m + RowBlock - 1) / RowBlock, colBlocks = (n + ColBlock - 1) / ColBlock;
        Par.For(rowBlocks * colBlocks, t =>
        {
            int i0 = t / colBlocks * RowBlock, i1 = Math.Min(m, i0 + RowBlock);
            int j0 = t % colBlocks * ColBlock, w = Math.Min(ColBlock, n - j0);
            for (int i = i0; i < i1; i++)
            {
                float* ci = c + (long)i * ldc + j0;
                if (beta == 0) new Span<float>(ci, w).Clear();
                else if (beta != 1) Blas.Scale(beta, ci, w);
                if (!transB)
                {
                    for (int p = 0; p < k; p++)
                    {
                        float av = alpha * (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]);
                        Blas.Axpy(av, b + (long)p * ldb + j0, ci, w);
                    }
                    continue;
                }
                for (int j = 0; j < w; j++)
                {
                    float* bj = b + (long)(j0 + j) * ldb;
                    float s = 0;
                    if (!transA) s = Blas.Dot(a + (long)i * lda, bj, k);
                    else for (int p = 0; p < k; p++) s += a[(long)p * lda + i] * bj[p];
                    ci[j] += alpha * s;
                }
            }
        });
    }
}
