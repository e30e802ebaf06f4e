// Register-tiled Vector512 building blocks of the blocked attention kernels: C = A B^T and C = diag(alpha) C + A B
// on packed tiles, a float exp for non-positive arguments, and the per-thread scratch memory they work in.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tensors.Kernels;

/// <summary>A micro-kernel dimension (vectors per row, rows per tile) as a type, so the JIT drops the unused parts.</summary>
internal interface ICount { static abstract int N { get; } }
internal struct N1 : ICount { public static int N => 1; }
internal struct N2 : ICount { public static int N => 2; }
internal struct N3 : ICount { public static int N => 3; }
internal struct N4 : ICount { public static int N => 4; }
internal struct N8 : ICount { public static int N => 8; }

internal static unsafe class AttentionTiles
{
    public const int Rows = 4;

    public static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    /// <summary>
    /// C[r, j] = sum_p A[r, p] Bt[p, j] for r &lt; rows (a multiple of 4) and j &lt; cols (a multiple of 16).
    /// Bt is the transposed right operand, so a row of 16 outputs is one vector FMA per p.
    /// </summary>
    public static void MulABt(float* a, int lda, float* bt, int ldb, int kdim, float* c, int ldc, int rows, int cols) =>
        Tiles(a, lda, 1, bt, ldb, kdim, c, ldc, rows, cols, null, accumulate: false);

    /// <summary>
    /// C[r, :cols] = alpha[r] C[r, :cols] + sum_p A[r, p] B[p, :cols] (alpha null: plain accumulate); rows a multiple
    /// of 4, cols a multiple of 16. Used for P V and for the gradient products, whose C tiles live in scratch.
    /// </summary>
    public static void MulAB(float* a, int lda, float* b, int ldb, int kdim, float* c, int ldc, int rows, int cols, float* alpha) =>
        Tiles(a, lda, 1, b, ldb, kdim, c, ldc, rows, cols, alpha, accumulate: true);

    /// <summary>C[r, :cols] += sum_p A[p, r] B[p, :cols]: MulAB with A read transposed, so score tiles need no transpose.</summary>
    public static void MulAtB(float* a, int lda, float* b, int ldb, int kdim, float* c, int ldc, int rows, int cols) =>
        Tiles(a, 1, lda, b, ldb, kdim, c, ldc, rows, cols, null, accumulate: true);

    /// <summary>
    /// A[r, p] is at a[r * ars + p * acs]. Covers C with tiles of up to 4 vectors per row: 8 rows when a tile has at
    /// most 3 vectors (24 accumulators), else 4 rows, so each loaded B vector feeds as many FMAs as 32 registers allow.
    /// </summary>
    private static void Tiles(float* a, int ars, int acs, float* b, int ldb, int kdim, float* c, int ldc, int rows, int cols, float* alpha, bool accumulate)
    {
        for (int j = 0; j < cols; j += 64)
        {
            int n = Math.Min(4, (cols - j) >> 4);
            for (int r = 0; r < rows;)
            {
                float* ar = a + (long)r * ars, cr = c + (long)r * ldc + j, al = alpha == null ? null : alpha + r;
                bool eight = n < 4 && rows - r >= 8;
                switch (n)
                {
                    case 4: Tile<N4, N4>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    case 3 when eight: Tile<N3, N8>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    case 3: Tile<N3, N4>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    case 2 when eight: Tile<N2, N8>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    case 2: Tile<N2, N4>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    case 1 when eight: Tile<N1, N8>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                    default: Tile<N1, N4>(ar, ars, acs, b + j, ldb, kdim, cr, ldc, al, accumulate); break;
                }
                r += eight ? 8 : 4;
            }
        }
    }

    /// <summary>Up to four accumulator (or operand) vectors of one row; promoted to registers once inlined.</summary>
    private struct Row
    {
        public Vector512<float> V0, V1, V2, V3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Row LoadRow<TN>(float* p, float scale) where TN : struct, ICount
    {
        var s = Vector512.Create(scale);
        Row r = default;
        r.V0 = Vector512.Load(p) * s;
        if (TN.N > 1) r.V1 = Vector512.Load(p + 16) * s;
        if (TN.N > 2) r.V2 = Vector512.Load(p + 32) * s;
        if (TN.N > 3) r.V3 = Vector512.Load(p + 48) * s;
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TN>(float* p, in Row r) where TN : struct, ICount
    {
        Vector512.Store(r.V0, p);
        if (TN.N > 1) Vector512.Store(r.V1, p + 16);
        if (TN.N > 2) Vector512.Store(r.V2, p + 32);
        if (TN.N > 3) Vector512.Store(r.V3, p + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma<TN>(ref Row c, float a, in Row b) where TN : struct, ICount
    {
        var x = Vector512.Create(a);
        c.V0 = Vector512.FusedMultiplyAdd(x, b.V0, c.V0);
        if (TN.N > 1) c.V1 = Vector512.FusedMultiplyAdd(x, b.V1, c.V1);
        if (TN.N > 2) c.V2 = Vector512.FusedMultiplyAdd(x, b.V2, c.V2);
        if (TN.N > 3) c.V3 = Vector512.FusedMultiplyAdd(x, b.V3, c.V3);
    }

    /// <summary>TR rows x TN vectors of C = alpha C + A B (accumulate) or C = A B (b rows of ldb floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TN, TR>(float* a, int ars, int acs, float* b, int ldb, int kdim, float* c, int ldc, float* alpha, bool accumulate)
        where TN : struct, ICount where TR : struct, ICount
    {
        Row c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        if (accumulate)
        {
            c0 = LoadRow<TN>(c, alpha == null ? 1f : alpha[0]); c1 = LoadRow<TN>(c + ldc, alpha == null ? 1f : alpha[1]);
            c2 = LoadRow<TN>(c + 2L * ldc, alpha == null ? 1f : alpha[2]); c3 = LoadRow<TN>(c + 3L * ldc, alpha == null ? 1f : alpha[3]);
            if (TR.N > 4)
            {
                c4 = LoadRow<TN>(c + 4L * ldc, alpha == null ? 1f : alpha[4]); c5 = LoadRow<TN>(c + 5L * ldc, alpha == null ? 1f : alpha[5]);
                c6 = LoadRow<TN>(c + 6L * ldc, alpha == null ? 1f : alpha[6]); c7 = LoadRow<TN>(c + 7L * ldc, alpha == null ? 1f : alpha[7]);
            }
        }
        float* a0 = a, a1 = a + ars, a2 = a1 + ars, a3 = a2 + ars, a4 = a3 + ars, a5 = a4 + ars, a6 = a5 + ars, a7 = a6 + ars;
        long off = 0;
        for (int p = 0; p < kdim; p++, off += acs)
        {
            var bp = LoadRow<TN>(b + (long)p * ldb, 1f);
            Fma<TN>(ref c0, a0[off], bp); Fma<TN>(ref c1, a1[off], bp); Fma<TN>(ref c2, a2[off], bp); Fma<TN>(ref c3, a3[off], bp);
            if (TR.N > 4) { Fma<TN>(ref c4, a4[off], bp); Fma<TN>(ref c5, a5[off], bp); Fma<TN>(ref c6, a6[off], bp); Fma<TN>(ref c7, a7[off], bp); }
        }
        StoreRow<TN>(c, c0); StoreRow<TN>(c + ldc, c1); StoreRow<TN>(c + 2L * ldc, c2); StoreRow<TN>(c + 3L * ldc, c3);
        if (TR.N > 4) { StoreRow<TN>(c + 4L * ldc, c4); StoreRow<TN>(c + 5L * ldc, c5); StoreRow<TN>(c + 6L * ldc, c6); StoreRow<TN>(c + 7L * ldc, c7); }
    }

    // A constant, not a static readonly field: the AggressiveOptimization kernels skip tiering, so a static field
    // would cost a class-initialization check inside their loops.
    private static Vector512<float> Iota
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }

    /// <summary>Lanes j0 + lane &gt;= limit are true: the masked (causal or padding) columns of a score vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MaskFrom(int j0, int limit) => Vector512.GreaterThanOrEqual(Iota, Vector512.Create((float)(limit - j0)));

    /// <summary>Lanes below limit are true: in key-major scores, the queries that come before a key (causal mask).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MaskBelow(int limit) => Vector512.LessThan(Iota, Vector512.Create((float)limit));

    /// <summary>
    /// exp(x) with about 1 ulp error; x below -110 (including -inf) gives exactly 0, so masked scores drop out, and
    /// large x gives +inf. Vector512.Exp widens to double and costs ~4x more, which shows in attention's softmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var xc = Vector512.Max(x, Vector512.Create(-110f));
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
        // vscalefps underflows n <= -159 to 0 and overflows to inf in one instruction.
        if (Avx512F.IsSupported) return Avx512F.Scale(p, n);
        var e = Vector512.Min(Vector512.Max(n, Vector512.Create(-127f)), Vector512.Create(128f));
        var scaled = p * ((Vector512.ConvertToInt32(e) + Vector512.Create(127)) << 23).AsSingle();
        return Vector512.ConditionalSelect(Vector512.LessThan(n, Vector512.Create(-126f)), Vector512<float>.Zero, scaled);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HorizontalMax(Vector512<float> v)
    {
        // MaxNative: one vmaxps each, where Max adds NaN and signed-zero fix-ups.
        var h = Vector256.MaxNative(v.GetLower(), v.GetUpper());
        var q = Vector128.MaxNative(h.GetLower(), h.GetUpper());
        q = Vector128.MaxNative(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.MaxNative(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
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
