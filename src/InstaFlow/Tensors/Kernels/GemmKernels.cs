// Register-tiled SGEMM micro-kernels over packed panels (or A read in place, row-major): one 6x32 tile of C per call,
// in AVX-512, AVX2 or scalar code. Every path sums each element in the same order with fused multiply-adds, so all
// give identical bits.
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

    /// <summary>
    /// <see cref="Tile"/> with A read where it lies, element (i, p) at a[i * rowStride + p * step] (row-major: (lda, 1);
    /// transposed: (1, lda)), instead of from a packed panel: the same products summed in the same order, so the same
    /// bits. A tile of fewer than MR rows copies its rows into a zero-padded panel first (reading past them would leave A).
    /// </summary>
    public static void TileInPlaceA(int kc, float* a, long rowStride, long step, float* b, float* c, long ldc, int mr, int nr, float beta, float* bias)
    {
        if (mr == MR && nr == NR && Isa != GemmIsa.Scalar)
        {
            if (Isa == GemmIsa.Avx512) Kernel<Vector512<float>, Isa512>(kc, a, rowStride, step, b, c, ldc, beta, bias);
            else
            {
                Kernel<Vector256<float>, Isa256>(kc, a, rowStride, step, b, c, ldc, beta, bias);
                Kernel<Vector256<float>, Isa256>(kc, a, rowStride, step, b + 16, c + 16, ldc, beta, bias);
            }
            return;
        }
        float* panel = stackalloc float[MR * KBlocks.KC];
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++) panel[p * MR + i] = i < mr ? a[i * rowStride + p * step] : 0f;
        Tile(kc, panel, b, c, ldc, mr, nr, beta, bias);
    }

    private static void Full(int kc, float* a, float* b, float* c, long ldc, float beta, float* bias)
    {
        switch (Isa)
        {
            case GemmIsa.Avx512: Kernel<Vector512<float>, Isa512>(kc, a, 1, MR, b, c, ldc, beta, bias); break;
            case GemmIsa.Avx2:
                // 12 ymm accumulators plus two operands fill AVX2's 16 registers: the 32 columns take two passes.
                Kernel<Vector256<float>, Isa256>(kc, a, 1, MR, b, c, ldc, beta, bias);
                Kernel<Vector256<float>, Isa256>(kc, a, 1, MR, b + 16, c + 16, ldc, beta, bias);
                break;
            default: KernelScalar(kc, a, b, c, ldc, beta, bias); break;
        }
    }

    /// <summary>
    /// 6 x (2 vectors) of C, A's element (i, p) at a[i * rowStride + p * step]: a packed panel (1, MR) or rows read in
    /// place (lda, 1). Six row bases and one running offset, so both layouts run the same loop. Generic over the
    /// vector type so the JIT emits one copy per width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<TV, TIsa>(int kc, float* a, long rowStride, long step, float* b, float* c, long ldc, float beta, float* bias)
        where TV : struct where TIsa : IFmaIsa<TV>
    {
        int w = TIsa.Width;
        float* a0 = a, a1 = a + rowStride, a2 = a + 2 * rowStride, a3 = a + 3 * rowStride, a4 = a + 4 * rowStride, a5 = a + 5 * rowStride;
        TV c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        TV c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        long o = 0;
        for (int p = 0; p < kc; p++, o += step)
        {
            var b0 = TIsa.Load(b);
            var b1 = TIsa.Load(b + w);
            var av = TIsa.Broadcast(a0[o]);
            c00 = TIsa.Fma(av, b0, c00); c01 = TIsa.Fma(av, b1, c01);
            av = TIsa.Broadcast(a1[o]);
            c10 = TIsa.Fma(av, b0, c10); c11 = TIsa.Fma(av, b1, c11);
            av = TIsa.Broadcast(a2[o]);
            c20 = TIsa.Fma(av, b0, c20); c21 = TIsa.Fma(av, b1, c21);
            av = TIsa.Broadcast(a3[o]);
            c30 = TIsa.Fma(av, b0, c30); c31 = TIsa.Fma(av, b1, c31);
            av = TIsa.Broadcast(a4[o]);
            c40 = TIsa.Fma(av, b0, c40); c41 = TIsa.Fma(av, b1, c41);
            av = TIsa.Broadcast(a5[o]);
            c50 = TIsa.Fma(av, b0, c50); c51 = TIsa.Fma(av, b1, c51);
            b += NR;
        }
        StoreRow<TV, TIsa>(c, c00, c01, beta, bias, 0);
        StoreRow<TV, TIsa>(c + ldc, c10, c11, beta, bias, 1);
        StoreRow<TV, TIsa>(c + 2 * ldc, c20, c21, beta, bias, 2);
        StoreRow<TV, TIsa>(c + 3 * ldc, c30, c31, beta, bias, 3);
        StoreRow<TV, TIsa>(c + 4 * ldc, c40, c41, beta, bias, 4);
        StoreRow<TV, TIsa>(c + 5 * ldc, c50, c51, beta, bias, 5);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TV, TIsa>(float* c, TV v0, TV v1, float beta, float* bias, int row)
        where TV : struct where TIsa : IFmaIsa<TV>
    {
        int w = TIsa.Width;
        if (bias != null)
        {
            var bv = TIsa.Broadcast(bias[row]);
            v0 = TIsa.Add(v0, bv); v1 = TIsa.Add(v1, bv);
        }
        if (beta != 0)
        {
            var bt = TIsa.Broadcast(beta);
            v0 = TIsa.Fma(bt, TIsa.Load(c), v0);
            v1 = TIsa.Fma(bt, TIsa.Load(c + w), v1);
        }
        TIsa.Store(v0, c);
        TIsa.Store(v1, c + w);
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

/// <summary>The few vector operations the micro-kernels and the peak benchmark need, for one vector width.</summary>
public unsafe interface IFmaIsa<TV> where TV : struct
{
    static abstract int Width { get; }
    static abstract TV Load(float* p);
    static abstract void Store(TV v, float* p);
    static abstract TV Broadcast(float x);
    static abstract TV Add(TV a, TV b);
    /// <summary>a * b + c, rounded once.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract float Sum(TV v);
}

public readonly unsafe struct Isa512 : IFmaIsa<Vector512<float>>
{
    public static int Width => 16;
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static void Store(Vector512<float> v, float* p) => Vector512.Store(v, p);
    public static Vector512<float> Broadcast(float x) => Vector512.Create(x);
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, b, c);
    public static float Sum(Vector512<float> v) => Vector512.Sum(v);
}

public readonly unsafe struct Isa256 : IFmaIsa<Vector256<float>>
{
    public static int Width => 8;
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    public static void Store(Vector256<float> v, float* p) => Vector256.Store(v, p);
    public static Vector256<float> Broadcast(float x) => Vector256.Create(x);
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, c);
    public static float Sum(Vector256<float> v) => Vector256.Sum(v);
}
