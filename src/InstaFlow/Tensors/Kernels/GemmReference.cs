// Plain triple-loop SGEMM (row-major, BLAS semantics) accumulating in double: the oracle for the fast kernel.
namespace InstaFlow.Tensors.Kernels;

internal static unsafe class GemmReference
{
    /// <summary>C = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T; all row-major.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    float bv = transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                    s += (double)av * bv;
                }
                float prev = beta == 0 ? 0 : beta * c[(long)i * ldc + j];
                c[(long)i * ldc + j] = (float)(alpha * s) + prev;
            }
    }
}
