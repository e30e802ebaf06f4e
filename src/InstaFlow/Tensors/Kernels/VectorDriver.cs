// The shared vectorized driver: element-wise operator structs supply scalar, Vector256 and Vector512 bodies;
// the driver picks the widest the CPU runs fast and handles the tail in scalar code.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public interface IUnaryOp
{
    static abstract float Apply(float x);
    static abstract Vector256<float> Apply(Vector256<float> x);
    static abstract Vector512<float> Apply(Vector512<float> x);
}

public interface IBinaryOp
{
    static abstract float Apply(float a, float b);
    static abstract Vector256<float> Apply(Vector256<float> a, Vector256<float> b);
    static abstract Vector512<float> Apply(Vector512<float> a, Vector512<float> b);
}

public static unsafe class VectorDriver
{
    /// <summary>
    /// Set false to force the Vector256 path (tests exercise both). A setting holds for the flow that made it (its
    /// thread and the tasks it starts), so a test that narrows the vectors does not change the bits of tests running
    /// beside it.
    /// </summary>
    public static bool UseVector512
    {
        get => _everSet ? Use512.Value ?? Vector512.IsHardwareAccelerated : Vector512.IsHardwareAccelerated;
        set { Use512.Value = value; _everSet = true; }
    }

    /// <summary>Set false to force the scalar path after the Vector512 one; per flow like <see cref="UseVector512"/>.</summary>
    public static bool UseVector256
    {
        get => _everSet ? Use256.Value ?? Vector256.IsHardwareAccelerated : Vector256.IsHardwareAccelerated;
        set { Use256.Value = value; _everSet = true; }
    }

    private static readonly AsyncLocal<bool?> Use512 = new(), Use256 = new();
    // The drivers read the switches on every call, many per op (a row at a time when broadcasting): until something
    // sets one (only tests do), they skip the flow lookup.
    private static volatile bool _everSet;

    private const long ParallelThreshold = 1 << 16;

    public static void Unary<TOp>(float* x, float* y, long n) where TOp : IUnaryOp
    {
        if (n >= ParallelThreshold)
            Par.ForRange(n, 1 << 15, (s, e) => UnarySerial<TOp>(x + s, y + s, e - s));
        else UnarySerial<TOp>(x, y, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void UnarySerial<TOp>(float* x, float* y, long n) where TOp : IUnaryOp
    {
        long i = 0;
        if (UseVector512)
            for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(x + i)), y + i);
        if (UseVector256)
            for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(Vector256.Load(x + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(x[i]);
    }

    /// <summary>y[i] = TCombine(h[i], TGate(g[i])): a gated activation in one pass, with the unary and binary ops' own vector forms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GatedSerial<TGate, TCombine>(float* h, float* g, float* y, long n) where TGate : IUnaryOp where TCombine : IBinaryOp
    {
        long i = 0;
        if (UseVector512)
            for (; i + 16 <= n; i += 16) Vector512.Store(TCombine.Apply(Vector512.Load(h + i), TGate.Apply(Vector512.Load(g + i))), y + i);
        if (UseVector256)
            for (; i + 8 <= n; i += 8) Vector256.Store(TCombine.Apply(Vector256.Load(h + i), TGate.Apply(Vector256.Load(g + i))), y + i);
        for (; i < n; i++) y[i] = TCombine.Apply(h[i], TGate.Apply(g[i]));
    }

    /// <summary>c[i] = op(a[i], b[i]) with per-operand stride 1 (vector) or 0 (broadcast scalar).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BinarySerial<TOp>(float* a, int sa, float* b, int sb, float* c, long n) where TOp : IBinaryOp
    {
        long i = 0;
        if (sa == 1 && sb == 1)
        {
            if (UseVector512)
                for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(a + i), Vector512.Load(b + i)), c + i);
            if (UseVector256)
                for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(Vector256.Load(a + i), Vector256.Load(b + i)), c + i);
            for (; i < n; i++) c[i] = TOp.Apply(a[i], b[i]);
        }
        else if (sa == 1)
        {
            float s = *b;
            if (UseVector512) { var v = Vector512.Create(s); for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(a + i), v), c + i); }
            if (UseVector256) { var v = Vector256.Create(s); for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(Vector256.Load(a + i), v), c + i); }
            for (; i < n; i++) c[i] = TOp.Apply(a[i], s);
        }
        else if (sb == 1)
        {
            float s = *a;
            if (UseVector512) { var v = Vector512.Create(s); for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(v, Vector512.Load(b + i)), c + i); }
            if (UseVector256) { var v = Vector256.Create(s); for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(v, Vector256.Load(b + i)), c + i); }
            for (; i < n; i++) c[i] = TOp.Apply(s, b[i]);
        }
        else
        {
            float r = TOp.Apply(*a, *b);
            for (; i < n; i++) c[i] = r;
        }
    }

    /// <summary>
    /// Broadcasting binary op. Dims are collapsed so that the innermost run is as long as possible, then the
    /// outer index space is split across threads (each output element is written by exactly one thread).
    /// </summary>
    public static void Binary<TOp>(float* a, ReadOnlySpan<int> shapeA, float* b, ReadOnlySpan<int> shapeB, float* c, int[] outShape) where TOp : IBinaryOp
    {
        var plan = BroadcastPlan.Create(shapeA, shapeB, outShape);
        long inner = plan.Inner;
        long outer = plan.Outer;
        int sa = plan.InnerStrideA, sb = plan.InnerStrideB;
        if (outer * inner < ParallelThreshold || outer == 1)
        {
            if (outer == 1 && inner >= ParallelThreshold)
            {
                Par.ForRange(inner, 1 << 15, (s, e) => BinarySerial<TOp>(a + s * sa, sa, b + s * sb, sb, c + s, e - s));
                return;
            }
            for (long o = 0; o < outer; o++)
            {
                plan.Offsets(o, out long oa, out long ob);
                BinarySerial<TOp>(a + oa, sa, b + ob, sb, c + o * inner, inner);
            }
            return;
        }
        Par.ForRange(outer, Math.Max(1, (1 << 15) / Math.Max(1, inner)), (s, e) =>
        {
            for (long o = s; o < e; o++)
            {
                plan.Offsets(o, out long oa, out long ob);
                BinarySerial<TOp>(a + oa, sa, b + ob, sb, c + o * inner, inner);
            }
        });
    }
}

/// <summary>Broadcast iteration plan: outer dims (with strides per operand) and one contiguous inner run.</summary>
internal sealed class BroadcastPlan
{
    public long Inner, Outer;
    public int InnerStrideA, InnerStrideB;
    private long[] _dims = Array.Empty<long>(), _strideA = Array.Empty<long>(), _strideB = Array.Empty<long>();

    public static BroadcastPlan Create(ReadOnlySpan<int> shapeA, ReadOnlySpan<int> shapeB, int[] outShape)
    {
        int r = outShape.Length;
        var dims = new List<long>(); var sa = new List<long>(); var sb = new List<long>();
        long accA = 1, accB = 1;
        var stA = new long[r]; var stB = new long[r];
        for (int i = r - 1; i >= 0; i--)
        {
            int ia = i - (r - shapeA.Length), ib = i - (r - shapeB.Length);
            int da = ia >= 0 ? shapeA[ia] : 1, db = ib >= 0 ? shapeB[ib] : 1;
            stA[i] = da == 1 ? 0 : accA; stB[i] = db == 1 ? 0 : accB;
            accA *= da; accB *= db;
        }
        // Collapse from innermost outward: merge dim i into the run when both operands stay linear.
        for (int i = 0; i < r; i++)
        {
            if (outShape[i] == 1) continue;
            if (dims.Count > 0)
            {
                int k = dims.Count - 1;
                if (sa[k] == stA[i] * outShape[i] && sb[k] == stB[i] * outShape[i])
                {
                    dims[k] *= outShape[i]; sa[k] = stA[i]; sb[k] = stB[i];
                    continue;
                }
            }
            dims.Add(outShape[i]); sa.Add(stA[i]); sb.Add(stB[i]);
        }
        var p = new BroadcastPlan();
        if (dims.Count == 0) { p.Inner = 1; p.Outer = 1; p.InnerStrideA = 0; p.InnerStrideB = 0; return p; }
        int last = dims.Count - 1;
        p.Inner = dims[last];
        p.InnerStrideA = (int)sa[last]; p.InnerStrideB = (int)sb[last];
        // The inner run must have stride 0 or 1; otherwise (impossible for contiguous inputs) fall back to length 1.
        p._dims = dims.Take(last).ToArray(); p._strideA = sa.Take(last).ToArray(); p._strideB = sb.Take(last).ToArray();
        p.Outer = 1; foreach (var d in p._dims) p.Outer *= d;
        return p;
    }

    public void Offsets(long o, out long oa, out long ob)
    {
        oa = 0; ob = 0;
        for (int i = _dims.Length - 1; i >= 0; i--)
        {
            long d = _dims[i];
            long idx = o % d; o /= d;
            oa += idx * _strideA[i]; ob += idx * _strideB[i];
        }
    }
}
