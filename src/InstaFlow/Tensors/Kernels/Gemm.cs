// Fast SGEMM entry point (row-major, BLAS semantics). Work is split over fixed tiles of C, so each element is
// computed by one thread in one K order: results are identical for any thread count.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Gemm
{
    /// <summary>C = alpha * op(A) * op(B) + beta * C (beta 0 means C is not read).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"Sgemm: negative size m={m} n={n} k={k}");
        if (m == 0 || n == 0) return;
        const int RowBlock = 16;
        int rowBlocks = (m + RowBlock - 1) / RowBlock;
        Par.For(rowBlocks, rb =>
        {
            int i0 = rb * RowBlock, i1 = Math.Min(m, i0 + RowBlock);
            for (int i = i0; i < i1; i++)
            {
                float* ci = c + (long)i * ldc;
                if (beta == 0) new Span<float>(ci, n).Clear();
                else if (beta != 1) Blas.Scale(beta, ci, n);
                if (!transB)
                {
                    for (int p = 0; p < k; p++)
                    {
                        float av = alpha * (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]);
                        Blas.Axpy(av, b + (long)p * ldb, ci, n);
                    }
                }
                else
                {
                    for (int j = 0; j < n; j++)
                    {
                        float s = 0;
                        float* bj = b + (long)j * ldb;
                        if (!transA) s = Blas.Dot(a + (long)i * lda, bj, k);
                        else for (int p = 0; p < k; p++) s += a[(long)p * lda + i] * bj[p];
                        ci[j] += alpha * s;
                    }
                }
            }
        });
    }
}
