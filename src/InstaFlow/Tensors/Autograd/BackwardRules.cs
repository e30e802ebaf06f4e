// Every backward rule, in one place. Apply returns one gradient per input (null where none is needed).
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors.Autograd;

internal static unsafe class BackwardRules
{
    public static Tensor?[] Apply(TapeNode n, Tensor g, Tensor output)
    {
        var x = n.Inputs;
        switch (n.Op)
        {
            case OpKind.Reshape: return new[] { Ops.Reshape(g, x[0].ShapeArray()) };
            case OpKind.Add: return new[] { SumTo(g, x[0]), SumTo(g, x[1]) };
            case OpKind.Sub: return new[] { SumTo(g, x[0]), x[1].TracksGrad ? SumTo(Ops.Neg(g), x[1]) : null };
            case OpKind.Mul:
                return new[]
                {
                    x[0].TracksGrad ? SumTo(Ops.Mul(g, n.Saved[1]), x[0]) : null,
                    x[1].TracksGrad ? SumTo(Ops.Mul(g, n.Saved[0]), x[1]) : null,
                };
            case OpKind.Div:
            {
                var a = n.Saved[0]; var b = n.Saved[1];
                var ga = x[0].TracksGrad ? SumTo(Ops.Div(g, b), x[0]) : null;
                // d(a/b)/db = -a / b^2
                var gb = x[1].TracksGrad ? SumTo(Ops.Neg(Ops.Div(Ops.Mul(g, a), Ops.Square(b))), x[1]) : null;
                return new[] { ga, gb };
            }
            case OpKind.AddScalar: return new[] { g };
            case OpKind.MulScalar: return new[] { Ops.MulScalar(g, n.Floats[0]) };
            case OpKind.Neg: return new[] { Ops.Neg(g) };
            case OpKind.Pow2: return new[] { Ops.Mul(g, Ops.MulScalar(n.Saved[0], 2f)) };
            case OpKind.Clamp:
            {
                float lo = n.Floats[0], hi = n.Floats[1];
                return new[] { Pointwise(g, n.Saved[0], (gv, v) => v >= lo && v <= hi ? gv : 0f) };
            }
            case OpKind.Exp: return new[] { Ops.Mul(g, n.Saved[0]) };
            case OpKind.Sqrt: return new[] { Ops.Div(g, Ops.MulScalar(n.Saved[0], 2f)) };
            case OpKind.Sigmoid: return new[] { Pointwise<SigmoidGradOp>(g, n.Saved[0]) };
            case OpKind.Tanh: return new[] { Pointwise<TanhGradOp>(g, n.Saved[0]) };
            case OpKind.Silu: return new[] { Pointwise<SiluGradOp>(g, n.Saved[0]) };
            case OpKind.Relu: return new[] { Pointwise<ReluGradOp>(g, n.Saved[0]) };
            case OpKind.QuickGelu: return new[] { Pointwise<QuickGeluGradOp>(g, n.Saved[0]) };
            case OpKind.Gelu: return new[] { Pointwise<GeluGradOp>(g, n.Saved[0]) };
            case OpKind.GeluGate: return new[] { GeluGateGrad(g, n.Saved[0]) };
            case OpKind.GeluTanh: return new[] { Pointwise<GeluTanhGradOp>(g, n.Saved[0]) };
            case OpKind.Sum:
            case OpKind.Mean:
            {
                int d = n.Ints[0];
                var shapeKeep = x[0].ShapeArray(); shapeKeep[d] = 1;
                var gk = Ops.Reshape(g, shapeKeep);
                var full = Ops.Add(Tensor.Zeros(x[0].ShapeArray()), gk);
                return new[] { n.Op == OpKind.Mean ? Ops.MulScalar(full, 1f / x[0].Shape[d]) : full };
            }
            case OpKind.Var:
            {
                int d = n.Ints[0], corr = n.Ints[2];
                var xs = n.Saved[0];
                var shapeKeep = xs.ShapeArray(); shapeKeep[d] = 1;
                var mean = Ops.Mean(xs, d, keepDim: true);
                var centered = Ops.Sub(xs, mean);
                float scale = 2f / (xs.Shape[d] - corr);
                return new[] { Ops.MulScalar(Ops.Mul(centered, Ops.Reshape(g, shapeKeep)), scale) };
            }
            case OpKind.Softmax:
            {
                // dx = y * (g - sum(g * y))
                var y = n.Saved[0];
                var gy = Ops.Mul(g, y);
                var s = Ops.Sum(gy, -1, keepDim: true);
                return new[] { Ops.Mul(y, Ops.Sub(g, s)) };
            }
            case OpKind.MatMul: return MatMulBackward(n, g);
            case OpKind.Linear: return LinearBackward(n, g);
            case OpKind.Permute:
            {
                var p = n.Ints;
                var inv = new int[p.Length];
                for (int i = 0; i < p.Length; i++) inv[p[i]] = i;
                return new[] { Ops.Permute(g, inv) };
            }
            case OpKind.Narrow: return new[] { NarrowBackward(g, n.Ints[0], n.Ints[1], n.Ints[2]) };
            case OpKind.Concat:
            {
                int d = n.Ints[0];
                var r = new Tensor?[x.Length];
                int off = 0;
                for (int i = 0; i < x.Length; i++)
                {
                    int len = n.Ints[1 + i];
                    if (x[i].TracksGrad) r[i] = Ops.Narrow(g, d, off, len);
                    off += len;
                }
                return r;
            }
            case OpKind.Pad:
            {
                int l = n.Ints[0], t = n.Ints[2];
                int h = x[0].Dim(-2), w = x[0].Dim(-1);
                return new[] { Ops.Narrow(Ops.Narrow(g, -2, t, h), -1, l, w) };
            }
            default:
                return ExtendedRules.Apply(n, g, output);
        }
    }

    /// <summary>
    /// The gradient of narrowing dim d to [start, start + len) out of size: g in that range, zeros around it, written
    /// in one pass (each outer row: zeros, the copy, zeros).
    /// </summary>
    private static Tensor NarrowBackward(Tensor g, int d, int start, int size)
    {
        int len = g.Shape[d];
        if (len == size) return g;
        var shape = g.ShapeArray(); shape[d] = size;
        var r = Tensor.Empty(shape);
        long inner = 1; for (int i = d + 1; i < g.Rank; i++) inner *= g.Shape[i];
        long outer = g.Numel / (len * inner), before = start * inner, run = len * inner, after = (size - start - len) * inner;
        float* pg = g.Data, pr = r.Data;
        Par.ForRange(outer, Math.Max(1, (1 << 15) / (size * inner)), (s, e) =>
        {
            for (long o = s; o < e; o++)
            {
                float* dst = pr + o * size * inner;
                new Span<float>(dst, (int)before).Clear();
                new ReadOnlySpan<float>(pg + o * run, (int)run).CopyTo(new Span<float>(dst + before, (int)run));
                new Span<float>(dst + before + run, (int)after).Clear();
            }
        });
        return r;
    }

    private static Tensor?[] MatMulBackward(TapeNode n, Tensor g)
    {
        var a = n.Saved[0]; var b = n.Saved[1];
        bool transB = n.Ints[0] == 1;
        Tensor? ga = null, gb = null;
        int m = a.Dim(-2), k = a.Dim(-1), nn = g.Dim(-1);
        // dA = g * op(B)^T; dB = A^T g (or g^T A when transB)
        if (a.TracksGrad) ga = Ops.MatMul(g, b, transB: !transB);
        if (b.TracksGrad)
        {
            if (b.Rank == 2)
            {
                long rows = a.Numel / k;
                gb = Tensor.Empty(b.ShapeArray());
                FlopCounter.Add(2L * rows * k * nn);
                if (!transB) GemmSplitK.Sgemm(true, false, k, nn, (int)rows, a.Data, k, g.Data, nn, gb.Data);
                else GemmSplitK.Sgemm(true, false, nn, k, (int)rows, g.Data, nn, a.Data, k, gb.Data);
            }
            else
            {
                long batch = a.Numel / ((long)m * k);
                gb = Tensor.Empty(b.ShapeArray());
                FlopCounter.Add(2L * batch * m * k * nn);
                for (long bi = 0; bi < batch; bi++)
                {
                    float* pa = a.Data + bi * m * k, pg = g.Data + bi * m * nn, pb = gb.Data + bi * k * nn;
                    if (!transB) Gemm.Sgemm(true, false, k, nn, m, 1f, pa, k, pg, nn, 0f, pb, nn);
                    else Gemm.Sgemm(true, false, nn, k, m, 1f, pg, nn, pa, k, 0f, pb, k);
                }
            }
        }
        return new[] { ga, gb };
    }

    private static Tensor?[] LinearBackward(TapeNode n, Tensor g)
    {
        var xin = n.Saved[0]; var w = n.Saved[1];
        int outF = w.Dim(0), inF = w.Dim(1);
        long rows = xin.Numel / inF;
        Tensor? gx = null, gw = null, gbias = null;
        if (n.Inputs[0].TracksGrad)
        {
            gx = Tensor.Empty(xin.ShapeArray());
            FlopCounter.Add(2L * rows * inF * outF);
            Gemm.Sgemm(false, false, (int)rows, inF, outF, 1f, g.Data, outF, w.Data, inF, 0f, gx.Data, inF);
        }
        if (n.Inputs[1].TracksGrad)
        {
            gw = Tensor.Empty(w.ShapeArray());
            FlopCounter.Add(2L * rows * inF * outF);
            GemmSplitK.Sgemm(true, false, outF, inF, (int)rows, g.Data, outF, xin.Data, inF, gw.Data);
        }
        if (n.Inputs.Length > 2 && n.Inputs[2].TracksGrad)
            gbias = Ops.Sum(Ops.Reshape(g, (int)rows, outF), 0);
        return n.Inputs.Length > 2 ? new[] { gx, gw, gbias } : new[] { gx, gw };
    }

    /// <summary>Reduces a broadcast gradient back to the shape of the input it flowed from.</summary>
    internal static Tensor SumTo(Tensor g, Tensor like)
    {
        if (ShapeUtil.SameShape(g.Shape, like.Shape)) return g;
        var target = like.ShapeArray();
        var r = Tensor.Zeros(target);
        var plan = BroadcastPlan.Create(target, target, g.ShapeArray());
        float* pg = g.Data, pr = r.Data;
        long inner = plan.Inner;
        for (long o = 0; o < plan.Outer; o++)
        {
            plan.Offsets(o, out long oa, out _);
            if (plan.InnerStrideA == 1) Blas.Axpy(1f, pg + o * inner, pr + oa, inner);
            else pr[oa] += Blas.Sum(pg + o * inner, inner);
        }
        return r;
    }

    /// <summary>
    /// y = h * gelu(gate) with [h, gate] the halves of x's last dim: dh = g * gelu(gate), dgate = gelu'(gate) (g * h),
    /// per element as the backward rules of Mul and Gelu compute them, so the same bits as Narrow, Gelu and Mul.
    /// </summary>
    private static Tensor GeluGateGrad(Tensor g, Tensor x)
    {
        var gx = Tensor.Empty(x.ShapeArray());
        int n = x.Dim(-1) / 2;
        long rows = n == 0 ? 0 : g.Numel / n;
        float* pg = g.Data, px = x.Data, pgx = gx.Data;
        Par.ForRange(rows, Math.Max(1, (1 << 15) / Math.Max(n, 1)), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                float* gr = pg + r * n, h = px + r * 2 * n, dh = pgx + r * 2 * n;
                Kernels.GeluGateGrad.Serial(gr, h, h + n, dh, dh + n, n);
            }
        });
        return gx;
    }

    /// <summary>r[i] = TOp(g[i], v[i]) through the vectorized driver: the rule for the common activations.</summary>
    internal static Tensor Pointwise<TOp>(Tensor g, Tensor v) where TOp : IBinaryOp
    {
        var r = Tensor.Empty(g.ShapeArray());
        float* pg = g.Data, pv = v.Data, pr = r.Data;
        Par.ForRange(g.Numel, 1 << 15, (s, e) => VectorDriver.BinarySerial<TOp>(pg + s, 1, pv + s, 1, pr + s, e - s));
        return r;
    }

    internal static Tensor Pointwise(Tensor g, Tensor v, Func<float, float, float> f)
    {
        var r = Tensor.Empty(g.ShapeArray());
        float* pg = g.Data, pv = v.Data, pr = r.Data;
        Par.ForRange(g.Numel, 1 << 15, (s, e) => { for (long i = s; i < e; i++) pr[i] = f(pg[i], pv[i]); });
        return r;
    }
}
