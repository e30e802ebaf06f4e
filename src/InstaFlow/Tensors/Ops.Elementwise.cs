// Element-wise ops (broadcasting binary, scalar, activations) at the tensor level, with tape recording.
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    public static Tensor Add(Tensor a, Tensor b) => Binary<AddOp>(a, b, OpKind.Add, "Add");
    public static Tensor Sub(Tensor a, Tensor b) => Binary<SubOp>(a, b, OpKind.Sub, "Sub");
    public static Tensor Mul(Tensor a, Tensor b) => Binary<MulOp>(a, b, OpKind.Mul, "Mul");
    public static Tensor Div(Tensor a, Tensor b) => Binary<DivOp>(a, b, OpKind.Div, "Div");

    private static Tensor Binary<TOp>(Tensor a, Tensor b, OpKind kind, string name) where TOp : IBinaryOp
    {
        var shape = ShapeUtil.Broadcast(a.Shape, b.Shape, name);
        var c = Tensor.Empty(shape);
        VectorDriver.Binary<TOp>(a.Data, a.Shape, b.Data, b.Shape, c.Data, shape);
        if (GradMode.ShouldRecord(a, b))
        {
            var saved = kind is OpKind.Mul or OpKind.Div ? new[] { a, b } : null;
            Tape.Record(c, kind, new[] { a, b }, saved);
        }
        return c;
    }

    /// <summary>a += b in place (b broadcast to a's shape), outside autograd: for gradient accumulation.</summary>
    public static void AddInPlace(Tensor a, Tensor b)
    {
        var shape = ShapeUtil.Broadcast(a.Shape, b.Shape, "AddInPlace");
        if (!ShapeUtil.SameShape(shape, a.Shape))
            throw new ArgumentException($"AddInPlace: {b.Describe()} would broadcast {a.Describe()} to {ShapeUtil.Format(shape)}");
        VectorDriver.Binary<AddOp>(a.Data, a.Shape, b.Data, b.Shape, a.Data, shape);
    }

    /// <summary>a += alpha * b in place, same shapes, outside autograd (optimizers, samplers).</summary>
    public static void AxpyInPlace(Tensor a, float alpha, Tensor b)
    {
        if (!ShapeUtil.SameShape(a.Shape, b.Shape))
            throw new ArgumentException($"AxpyInPlace: shapes {a.Describe()} and {b.Describe()} differ");
        var pa = a.Data; var pb = b.Data;
        Par.ForRange(a.Numel, 1 << 15, (s, e) => Blas.Axpy(alpha, pb + s, pa + s, e - s));
    }

    public static Tensor AddScalar(Tensor a, float s)
    {
        var c = ScalarOp<AddOp>(a, s);
        if (GradMode.ShouldRecord(a)) Tape.Record(c, OpKind.AddScalar, new[] { a }, floats: new[] { s });
        return c;
    }

    public static Tensor MulScalar(Tensor a, float s)
    {
        var c = ScalarOp<MulOp>(a, s);
        if (GradMode.ShouldRecord(a)) Tape.Record(c, OpKind.MulScalar, new[] { a }, floats: new[] { s });
        return c;
    }

    /// <summary>c = op(a, s) with the scalar broadcast by the driver (stride 0): no tensor is made for s.</summary>
    private static Tensor ScalarOp<TOp>(Tensor a, float s) where TOp : IBinaryOp
    {
        var c = Tensor.Empty(a.ShapeArray());
        float* pa = a.Data, pc = c.Data;
        Par.ForRange(a.Numel, 1 << 15, (lo, hi) =>
        {
            float v = s;
            VectorDriver.BinarySerial<TOp>(pa + lo, 1, &v, 0, pc + lo, hi - lo);
        });
        return c;
    }

    public static Tensor Neg(Tensor a) => Unary<NegOp>(a, OpKind.Neg, saveOutput: false);
    public static Tensor Exp(Tensor a) => Unary<ExpOp>(a, OpKind.Exp, saveOutput: true);
    public static Tensor Sqrt(Tensor a) => Unary<SqrtOp>(a, OpKind.Sqrt, saveOutput: true);
    public static Tensor Sigmoid(Tensor a) => Unary<SigmoidOp>(a, OpKind.Sigmoid, saveOutput: true);
    public static Tensor Tanh(Tensor a) => Unary<TanhOp>(a, OpKind.Tanh, saveOutput: true);
    public static Tensor Silu(Tensor a) => Unary<SiluOp>(a, OpKind.Silu, saveOutput: false);
    public static Tensor Gelu(Tensor a) => Unary<GeluOp>(a, OpKind.Gelu, saveOutput: false);
    public static Tensor GeluTanh(Tensor a) => Unary<GeluTanhOp>(a, OpKind.GeluTanh, saveOutput: false);
    public static Tensor QuickGelu(Tensor a) => Unary<QuickGeluOp>(a, OpKind.QuickGelu, saveOutput: false);

    /// <summary>
    /// GEGLU's gating: x [..., 2n] -> x[..., :n] * gelu(x[..., n:]) in one pass, where Narrow, Narrow, Gelu and Mul
    /// would copy both halves and write two more n-wide tensors (42 MB of activations at SD's 64x64 level). The same
    /// operations per element as Mul(h, Gelu(gate)), forward and backward, so the same bits wherever n is a multiple
    /// of the vector width; while recording, only x is kept for the backward pass.
    /// </summary>
    public static Tensor GeluGate(Tensor x)
    {
        if (x.Rank < 1 || x.Dim(-1) % 2 != 0) throw new ArgumentException($"GeluGate: the last dim of {x.Describe()} must split into two equal halves");
        var shape = x.ShapeArray();
        int n = shape[^1] / 2;
        shape[^1] = n;
        var y = Tensor.Empty(shape);
        long rows = n == 0 ? 0 : y.Numel / n;
        float* px = x.Data, py = y.Data;
        Par.ForRange(rows, Math.Max(1, (1 << 15) / Math.Max(n, 1)), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++) VectorDriver.GatedSerial<GeluOp, MulOp>(px + r * 2 * n, px + r * 2 * n + n, py + r * n, n);
        });
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.GeluGate, new[] { x }, new[] { x });
        return y;
    }
    /// <summary>max(x, 0); the gradient passes where the output is positive (0 at x = 0, as in PyTorch).</summary>
    public static Tensor Relu(Tensor a) => Unary<ReluOp>(a, OpKind.Relu, saveOutput: true);

    /// <summary>min(max(x, lo), hi); the gradient passes only where x is inside [lo, hi].</summary>
    public static Tensor Clamp(Tensor a, float lo, float hi)
    {
        if (!(lo <= hi)) throw new ArgumentException($"Clamp: lower bound {lo} is above upper bound {hi}");
        var c = Tensor.Empty(a.ShapeArray());
        float* pa = a.Data, pc = c.Data;
        Par.ForRange(a.Numel, 1 << 15, (s, e) => { for (long i = s; i < e; i++) pc[i] = Math.Clamp(pa[i], lo, hi); });
        if (GradMode.ShouldRecord(a)) Tape.Record(c, OpKind.Clamp, new[] { a }, new[] { a }, floats: new[] { lo, hi });
        return c;
    }

    /// <summary>x * x, element-wise.</summary>
    public static Tensor Square(Tensor a)
    {
        var c = Tensor.Empty(a.ShapeArray());
        VectorDriver.Binary<MulOp>(a.Data, a.Shape, a.Data, a.Shape, c.Data, c.ShapeArray());
        if (GradMode.ShouldRecord(a)) Tape.Record(c, OpKind.Pow2, new[] { a }, new[] { a });
        return c;
    }

    private static Tensor Unary<TOp>(Tensor a, OpKind kind, bool saveOutput) where TOp : IUnaryOp
    {
        var c = Tensor.Empty(a.ShapeArray());
        VectorDriver.Unary<TOp>(a.Data, c.Data, a.Numel);
        if (GradMode.ShouldRecord(a))
            Tape.Record(c, kind, new[] { a }, saveOutput ? new[] { c.Detach() } : new[] { a });
        return c;
    }

    /// <summary>In-place activation for inference paths (no tape): x = op(x).</summary>
    internal static void UnaryInPlace<TOp>(Tensor x) where TOp : IUnaryOp => VectorDriver.Unary<TOp>(x.Data, x.Data, x.Numel);

    public static Tensor SiluInPlace(Tensor x) { RequireNoGrad(x, "SiluInPlace"); UnaryInPlace<SiluOp>(x); return x; }

    internal static void RequireNoGrad(Tensor x, string op)
    {
        if (GradMode.ShouldRecord(x)) throw new InvalidOperationException($"{op} modifies {x.Describe()} in place and cannot be used while recording gradients");
    }
}
