// Register-tiled SGEMM micro-kernels over packed panels: one 6x32 tile of C per call, in AVX-512, AVX2 or scalar code.
// Every path sums each element in the same order with fused multiply-adds, so the three give identical bits.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tensors.Kernels;

/// <summary>Instruction set used by the SGEMM / conv micro-kernels.</summary>
public enum GemmIsa { Scalar, Avx2, Avx512 }

public static unsafe class GemmKernels
{
    /// <summary>Rows of C per micro-tile (A panels are MR wide).</summary>
    public const int MR = 6;
    /// <summary>Columns of C per micro-tile (B panels are NR wide: two zmm).</summary>
    public const int NR = 32;

    /// <summary>The widest path this CPU runs; tests lower it to exercise the others.</summary>
    public static GemmIsa Isa = Best;

    public static GemmIsa Best => Avx512F.IsSupported ? GemmIsa.Avx512 : Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Avx2 : GemmIsa.Scalar;

    /// <summary>
    /// Tile (mr x nr &lt;= 6 x 32) of C = acc (+ bias[row]) (+ beta * C), acc = sum over kc of a[p*6+i] * b[p*32+j].
    /// bias (indexed by tile row) may be null; beta 0 means C is not read.
    /// </summary>
    public static void Tile(int kc, float* a, float* b, float* c, long ldc, int mr, int nr, float beta, float* bias)
    {
        if (mr == MR && nr == NR) { Full(kc, a, b, c, ldc, beta, bias); return; }
        // Edge tile: the zero-padded panels let the full kernel run; only the valid part reaches C.
        float* tmp = stackalloc float[MR * NR];
        Full(kc, a, b, tmp, NR, 0f, null);
        for (int i = 0; i < mr; i++)
        {
            float bi = bias != null ? bias[i] : 0f;
            float* ci = c + i * ldc, ti = tmp + i * NR;
            for (int j = 0; j < nr; j++)
            {
                float v = ti[j];
                if (bias != null) v += bi;
                ci[j] = beta != 0 ? MathF.FusedMultiplyAdd(beta, ci[j], v) : v;
            }
        }
    }

    private static void Full(int kc, float* a, float* b, float* c, long ldc, float beta, float* bias)
    {
        switch (Isa)
        {
            case GemmIsa.Avx512: Kernel512(kc, a, b, c, ldc, beta, bias); break;
            case GemmIsa.Avx2:
                Kernel256(kc, a, b, c, ldc, beta, bias);
                Kernel256(kc, a, b + 16, c + 16, ldc, beta, bias);
                break;
            default: KernelScalar(kc, a, b, c, ldc, beta, bias); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(int kc, float* a, float* b, float* c, long ldc, float beta, float* bias)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51);
            a += MR; b += NR;
        }
        Store512(c, c00, c01, beta, bias, 0);
        Store512(c + ldc, c10, c11, beta, bias, 1);
        Store512(c + 2 * ldc, c20, c21, beta, bias, 2);
        Store512(c + 3 * ldc, c30, c31, beta, bias, 3);
        Store512(c + 4 * ldc, c40, c41, beta, bias, 4);
        Store512(c + 5 * ldc, c50, c51, beta, bias, 5);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> v0, Vector512<float> v1, float beta, float* bias, int row)
    {
        if (bias != null)
        {
            var bv = Vector512.Create(bias[row]);
            v0 += bv; v1 += bv;
        }
        if (beta != 0)
        {
            var bt = Vector512.Create(beta);
            v0 = Avx512F.FusedMultiplyAdd(bt, Vector512.Load(c), v0);
            v1 = Avx512F.FusedMultiplyAdd(bt, Vector512.Load(c + 16), v1);
        }
        Vector512.Store(v0, c);
        Vector512.Store(v1, c + 16);
    }

    /// <summary>One 6x16 half of the tile: 12 ymm accumulators plus two operands fit AVX2's 16 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(int kc, float* a, float* b, float* c, long ldc, float beta, float* bias)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(av, b0, c00); c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(av, b0, c10); c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(av, b0, c20); c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(av, b0, c30); c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(av, b0, c40); c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(av, b0, c50); c51 = Fma.MultiplyAdd(av, b1, c51);
            a += MR; b += NR;
        }
        Store256(c, c00, c01, beta, bias, 0);
        Store256(c + ldc, c10, c11, beta, bias, 1);
        Store256(c + 2 * ldc, c20, c21, beta, bias, 2);
        Store256(c + 3 * ldc, c30, c31, beta, bias, 3);
        Store256(c + 4 * ldc, c40, c41, beta, bias, 4);
        Store256(c + 5 * ldc, c50, c51, beta, bias, 5);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> v0, Vector256<float> v1, float beta, float* bias, int row)
    {
        if (bias != null)
        {
            var bv = Vector256.Create(bias[row]);
            v0 += bv; v1 += bv;
        }
        if (beta != 0)
        {
            var bt = Vector256.Create(beta);
            v0 = Fma.MultiplyAdd(bt, Vector256.Load(c), v0);
            v1 = Fma.MultiplyAdd(bt, Vector256.Load(c + 8), v1);
        }
        Vector256.Store(v0, c);
        Vector256.Store(v1, c + 8);
    }

    private static void KernelScalar(int kc, float* a, float* b, float* c, long ldc, float beta, float* bias)
    {
        float* acc = stackalloc float[MR * NR];
        new Span<float>(acc, MR * NR).Clear();
        for (int p = 0; p < kc; p++, a += MR, b += NR)
            for (int i = 0; i < MR; i++)
            {
                float ai = a[i];
                float* row = acc + i * NR;
                for (int j = 0; j < NR; j++) row[j] = MathF.FusedMultiplyAdd(ai, b[j], row[j]);
            }
        for (int i = 0; i < MR; i++)
        {
            float* ci = c + i * ldc, row = acc + i * NR;
            for (int j = 0; j < NR; j++)
            {
                float v = row[j];
                if (bias != null) v += bias[i];
                ci[j] = beta != 0 ? MathF.FusedMultiplyAdd(beta, ci[j], v) : v;
            }
        }
    }
}
