// Register-tiled Vector512 building blocks of the blocked attention kernels: C = A B^T and C = diag(alpha) C + A B
// on packed tiles, a float exp for non-positive arguments, and the per-thread scratch memory they work in.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>How many 16-float vectors a micro-kernel keeps per row; a type so that the JIT drops the unused lanes.</summary>
internal interface IVecCount { static abstract int N { get; } }
internal struct Vec1 : IVecCount { public static int N => 1; }
internal struct Vec2 : IVecCount { public static int N => 2; }
internal struct Vec3 : IVecCount { public static int N => 3; }
internal struct Vec4 : IVecCount { public static int N => 4; }

internal static unsafe class AttentionTiles
{
    public const int Rows = 4;

    public static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    /// <summary>
    /// C[r, j] = sum_p A[r, p] Bt[p, j] for r &lt; rows (a multiple of 4) and j &lt; cols (a multiple of 16).
    /// Bt is the transposed right operand, so a row of 16 outputs is one vector FMA per p.
    /// </summary>
    public static void MulABt(float* a, int lda, float* bt, int ldb, int kdim, float* c, int ldc, int rows, int cols)
    {
        for (int j = 0; j < cols; j += 64)
        {
            int n = Math.Min(4, (cols - j) >> 4);
            for (int r = 0; r < rows; r += Rows)
            {
                float* ar = a + (long)r * lda, cr = c + (long)r * ldc + j;
                switch (n)
                {
                    case 4: ABt<Vec4>(ar, lda, bt + j, ldb, kdim, cr, ldc); break;
                    case 3: ABt<Vec3>(ar, lda, bt + j, ldb, kdim, cr, ldc); break;
                    case 2: ABt<Vec2>(ar, lda, bt + j, ldb, kdim, cr, ldc); break;
                    default: ABt<Vec1>(ar, lda, bt + j, ldb, kdim, cr, ldc); break;
                }
            }
        }
    }

    /// <summary>
    /// C[r, :cols] = alpha[r] C[r, :cols] + sum_p A[r, p] B[p, :cols] (alpha null: plain accumulate); rows a multiple
    /// of 4, cols a multiple of 16. Used for P V and for the gradient products, whose C tiles live in scratch.
    /// </summary>
    public static void MulAB(float* a, int lda, float* b, int ldb, int kdim, float* c, int ldc, int rows, int cols, float* alpha)
    {
        for (int j = 0; j < cols; j += 64)
        {
            int n = Math.Min(4, (cols - j) >> 4);
            for (int r = 0; r < rows; r += Rows)
            {
                float* ar = a + (long)r * lda, cr = c + (long)r * ldc + j, al = alpha == null ? null : alpha + r;
                switch (n)
                {
                    case 4: AB<Vec4>(ar, lda, b + j, ldb, kdim, cr, ldc, al); break;
                    case 3: AB<Vec3>(ar, lda, b + j, ldb, kdim, cr, ldc, al); break;
                    case 2: AB<Vec2>(ar, lda, b + j, ldb, kdim, cr, ldc, al); break;
                    default: AB<Vec1>(ar, lda, b + j, ldb, kdim, cr, ldc, al); break;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ABt<TN>(float* a, int lda, float* bt, int ldb, int kdim, float* c, int ldc) where TN : struct, IVecCount
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda;
        for (int p = 0; p < kdim; p++)
        {
            float* bp = bt + (long)p * ldb;
            var b0 = Vector512.Load(bp);
            var b1 = TN.N > 1 ? Vector512.Load(bp + 16) : default;
            var b2 = TN.N > 2 ? Vector512.Load(bp + 32) : default;
            var b3 = TN.N > 3 ? Vector512.Load(bp + 48) : default;
            var x = Vector512.Create(a0[p]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            if (TN.N > 1) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            if (TN.N > 2) c02 = Vector512.FusedMultiplyAdd(x, b2, c02);
            if (TN.N > 3) c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            x = Vector512.Create(a1[p]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            if (TN.N > 1) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            if (TN.N > 2) c12 = Vector512.FusedMultiplyAdd(x, b2, c12);
            if (TN.N > 3) c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            x = Vector512.Create(a2[p]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            if (TN.N > 1) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            if (TN.N > 2) c22 = Vector512.FusedMultiplyAdd(x, b2, c22);
            if (TN.N > 3) c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            x = Vector512.Create(a3[p]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            if (TN.N > 1) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            if (TN.N > 2) c32 = Vector512.FusedMultiplyAdd(x, b2, c32);
            if (TN.N > 3) c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
        }
        StoreRow<TN>(c, c00, c01, c02, c03);
        StoreRow<TN>(c + ldc, c10, c11, c12, c13);
        StoreRow<TN>(c + 2L * ldc, c20, c21, c22, c23);
        StoreRow<TN>(c + 3L * ldc, c30, c31, c32, c33);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AB<TN>(float* a, int lda, float* b, int ldb, int kdim, float* c, int ldc, float* alpha) where TN : struct, IVecCount
    {
        float* r0 = c, r1 = c + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
        var s0 = Vector512.Create(alpha == null ? 1f : alpha[0]);
        var s1 = Vector512.Create(alpha == null ? 1f : alpha[1]);
        var s2 = Vector512.Create(alpha == null ? 1f : alpha[2]);
        var s3 = Vector512.Create(alpha == null ? 1f : alpha[3]);
        Vector512<float> c00 = Vector512.Load(r0) * s0, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = Vector512.Load(r1) * s1, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = Vector512.Load(r2) * s2, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = Vector512.Load(r3) * s3, c31 = default, c32 = default, c33 = default;
        if (TN.N > 1) { c01 = Vector512.Load(r0 + 16) * s0; c11 = Vector512.Load(r1 + 16) * s1; c21 = Vector512.Load(r2 + 16) * s2; c31 = Vector512.Load(r3 + 16) * s3; }
        if (TN.N > 2) { c02 = Vector512.Load(r0 + 32) * s0; c12 = Vector512.Load(r1 + 32) * s1; c22 = Vector512.Load(r2 + 32) * s2; c32 = Vector512.Load(r3 + 32) * s3; }
        if (TN.N > 3) { c03 = Vector512.Load(r0 + 48) * s0; c13 = Vector512.Load(r1 + 48) * s1; c23 = Vector512.Load(r2 + 48) * s2; c33 = Vector512.Load(r3 + 48) * s3; }
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda;
        for (int p = 0; p < kdim; p++)
        {
            float* bp = b + (long)p * ldb;
            var b0 = Vector512.Load(bp);
            var b1 = TN.N > 1 ? Vector512.Load(bp + 16) : default;
            var b2 = TN.N > 2 ? Vector512.Load(bp + 32) : default;
            var b3 = TN.N > 3 ? Vector512.Load(bp + 48) : default;
            var x = Vector512.Create(a0[p]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            if (TN.N > 1) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            if (TN.N > 2) c02 = Vector512.FusedMultiplyAdd(x, b2, c02);
            if (TN.N > 3) c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            x = Vector512.Create(a1[p]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            if (TN.N > 1) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            if (TN.N > 2) c12 = Vector512.FusedMultiplyAdd(x, b2, c12);
            if (TN.N > 3) c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            x = Vector512.Create(a2[p]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            if (TN.N > 1) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            if (TN.N > 2) c22 = Vector512.FusedMultiplyAdd(x, b2, c22);
            if (TN.N > 3) c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            x = Vector512.Create(a3[p]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            if (TN.N > 1) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            if (TN.N > 2) c32 = Vector512.FusedMultiplyAdd(x, b2, c32);
            if (TN.N > 3) c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
        }
        StoreRow<TN>(r0, c00, c01, c02, c03);
        StoreRow<TN>(r1, c10, c11, c12, c13);
        StoreRow<TN>(r2, c20, c21, c22, c23);
        StoreRow<TN>(r3, c30, c31, c32, c33);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TN>(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3) where TN : struct, IVecCount
    {
        Vector512.Store(v0, c);
        if (TN.N > 1) Vector512.Store(v1, c + 16);
        if (TN.N > 2) Vector512.Store(v2, c + 32);
        if (TN.N > 3) Vector512.Store(v3, c + 48);
    }

    private static readonly Vector512<float> Iota = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    /// <summary>Lanes j0 + lane &gt;= limit are true: the masked (causal or padding) columns of a score vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MaskFrom(int j0, int limit) => Vector512.GreaterThanOrEqual(Iota, Vector512.Create((float)(limit - j0)));

    /// <summary>
    /// exp(x) for x &lt;= ~88 with about 1 ulp error; x below -87.3 (including -inf) gives exactly 0, so masked scores
    /// drop out. Vector512.Exp widens to double and costs ~4x more, which shows in attention's softmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var underflow = Vector512.LessThan(x, Vector512.Create(-87.3f));
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(-87.3f)), Vector512.Create(88.5f));
        // x = n ln2 + r with |r| <= ln2/2; ln2 split in two so that n*ln2_hi is exact.
        var n = Vector512.Round(xc * Vector512.Create(1.44269504f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        // Taylor series to degree 7: the truncation error on |r| <= 0.347 is ~3e-9 relative.
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(1.98412698e-4f), r, Vector512.Create(1.38888889e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.33333333e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.16666667e-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.166666667f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var pow2 = (Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23;
        return Vector512.ConditionalSelect(underflow, Vector512<float>.Zero, p * pow2.AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HorizontalMax(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <summary>c[r, :cols] = a[:rows, r] transposed (a is rows x lda); moves a score tile into key-major order.</summary>
    public static void Transpose(float* a, int lda, int rows, int cols, float* c, int ldc)
    {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                c[(long)j * ldc + i] = a[(long)i * lda + j];
    }
}

/// <summary>
/// Per-thread, 64-byte-aligned scratch that grows to the largest request and is then reused, so steady-state calls
/// allocate nothing. The holder's finalizer frees the memory when a pool thread retires.
/// </summary>
internal sealed unsafe class ThreadScratch
{
    [ThreadStatic] private static ThreadScratch? _current;
    private float* _p;
    private long _floats;

    public static float* Get(long floats)
    {
        var s = _current ??= new ThreadScratch();
        if (s._floats < floats)
        {
            if (s._p != null) NativeMemory.AlignedFree(s._p);
            s._p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            s._floats = floats;
        }
        return s._p;
    }

    ~ThreadScratch()
    {
        if (_p != null) NativeMemory.AlignedFree(_p);
    }
}
