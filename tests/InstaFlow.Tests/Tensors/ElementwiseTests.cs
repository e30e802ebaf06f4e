// Fast element-wise kernels vs scalar double-precision references, on odd sizes and broadcast shapes; the fused GEGLU
// gate against the reference and against the unfused ops.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

public class ElementwiseTests
{
    public static readonly int[] OddSizes = { 1, 7, 17, 33, 65, 257, 70001 };

    public static IEnumerable<object[]> UnaryCases()
    {
        foreach (var n in OddSizes)
            foreach (var op in new[] { "exp", "sqrt", "sigmoid", "silu", "tanh", "gelu", "gelu_tanh", "quick_gelu", "neg", "relu" })
                yield return new object[] { op, n };
    }

    private static double Ref(string op, double x) => op switch
    {
        "exp" => Math.Exp(x),
        "sqrt" => Math.Sqrt(Math.Abs(x)),
        "sigmoid" => 1 / (1 + Math.Exp(-x)),
        "silu" => x / (1 + Math.Exp(-x)),
        "tanh" => Math.Tanh(x),
        "gelu" => 0.5 * x * (1 + ErfMath.ErfRef(x / Math.Sqrt(2))),
        "gelu_tanh" => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        "quick_gelu" => x / (1 + Math.Exp(-1.702 * x)),
        "neg" => -x,
        "relu" => Math.Max(x, 0),
        _ => throw new ArgumentException(op),
    };

    private static Tensor Fast(string op, Tensor x) => op switch
    {
        "exp" => Ops.Exp(x),
        "sqrt" => Ops.Sqrt(x),
        "sigmoid" => Ops.Sigmoid(x),
        "silu" => Ops.Silu(x),
        "tanh" => Ops.Tanh(x),
        "gelu" => Ops.Gelu(x),
        "gelu_tanh" => Ops.GeluTanh(x),
        "quick_gelu" => Ops.QuickGelu(x),
        "neg" => Ops.Neg(x),
        "relu" => Ops.Relu(x),
        _ => throw new ArgumentException(op),
    };

    [Theory]
    [MemberData(nameof(UnaryCases))]
    public void Unary_RandomOddSizes_MatchesDoubleReference(string op, int n)
    {
        using var scope = TensorScope.Begin();
        var data = TestUtil.RandomArray(n, n, scale: 6f);
        if (op == "sqrt") for (int i = 0; i < n; i++) data[i] = MathF.Abs(data[i]);
        var x = Tensor.FromArray(data, n);
        foreach (var wide in new[] { true, false })
        {
            VectorDriver.UseVector512 = wide && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
            try
            {
                var y = Fast(op, x);
                var expected = data.Select(v => (float)Ref(op, v)).ToArray();
                TestUtil.AssertClose(expected, y.Span, atol: 2e-6f, rtol: 2e-6f, what: $"{op} n={n} v512={wide}");
            }
            finally { VectorDriver.UseVector512 = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated; }
        }
    }

    public static IEnumerable<object[]> GradCases()
    {
        foreach (var n in OddSizes)
            foreach (var op in new[] { "silu", "quick_gelu", "sigmoid", "tanh", "relu", "gelu", "gelu_tanh" })
                yield return new object[] { op, n };
    }

    // g times the derivative at v (the input for silu/quick_gelu, the output for sigmoid/tanh), in double
    private static double GradRef(string op, double g, double v)
    {
        double Sig(double z) => 1 / (1 + Math.Exp(-z));
        return op switch
        {
            "silu" => g * Sig(v) * (1 + v * (1 - Sig(v))),
            "quick_gelu" => g * Sig(1.702 * v) * (1 + 1.702 * v * (1 - Sig(1.702 * v))),
            "sigmoid" => g * v * (1 - v),
            "tanh" => g * (1 - v * v),
            "relu" => v > 0 ? g : 0,
            "gelu" => g * (0.5 * (1 + ErfMath.ErfRef(v / Math.Sqrt(2))) + v * Math.Exp(-0.5 * v * v) / Math.Sqrt(2 * Math.PI)),
            "gelu_tanh" => g * GeluTanhDerivative(v),
            _ => throw new ArgumentException(op),
        };
    }

    private static double GeluTanhDerivative(double v)
    {
        double c = Math.Sqrt(2 / Math.PI), t = Math.Tanh(c * (v + 0.044715 * v * v * v));
        return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
    }

    private static unsafe void FastGrad(string op, float* g, float* v, float* r, long n)
    {
        switch (op)
        {
            case "silu": VectorDriver.BinarySerial<SiluGradOp>(g, 1, v, 1, r, n); break;
            case "quick_gelu": VectorDriver.BinarySerial<QuickGeluGradOp>(g, 1, v, 1, r, n); break;
            case "sigmoid": VectorDriver.BinarySerial<SigmoidGradOp>(g, 1, v, 1, r, n); break;
            case "tanh": VectorDriver.BinarySerial<TanhGradOp>(g, 1, v, 1, r, n); break;
            case "relu": VectorDriver.BinarySerial<ReluGradOp>(g, 1, v, 1, r, n); break;
            case "gelu": VectorDriver.BinarySerial<GeluGradOp>(g, 1, v, 1, r, n); break;
            case "gelu_tanh": VectorDriver.BinarySerial<GeluTanhGradOp>(g, 1, v, 1, r, n); break;
            default: throw new ArgumentException(op);
        }
    }

    [Theory]
    [MemberData(nameof(GradCases))]
    public unsafe void ActivationGrad_RandomOddSizes_MatchesDoubleReference(string op, int n)
    {
        var g = TestUtil.RandomArray(2 * n + 1, n, scale: 2f);
        var v = TestUtil.RandomArray(3 * n + 1, n, scale: 6f);
        if (op is "sigmoid" or "tanh") for (int i = 0; i < n; i++) v[i] = MathF.Tanh(v[i]); // outputs lie in (-1, 1)
        if (op == "relu") for (int i = 0; i < n; i += 3) v[i] = 0f; // outputs are >= 0, often exactly 0
        if (op == "relu") for (int i = 0; i < n; i++) v[i] = MathF.Max(v[i], 0f);
        var expected = Enumerable.Range(0, n).Select(i => (float)GradRef(op, g[i], v[i])).ToArray();
        var r = new float[n];
        foreach (var wide in new[] { true, false })
        {
            VectorDriver.UseVector512 = wide && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
            try
            {
                fixed (float* pg = g, pv = v, pr = r) FastGrad(op, pg, pv, pr, n);
                TestUtil.AssertClose(expected, r, atol: 2e-6f, rtol: 2e-6f, what: $"{op} grad n={n} v512={wide}");
            }
            finally { VectorDriver.UseVector512 = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated; }
        }
    }

    [Theory]
    [InlineData(new[] { 2, 3, 5 }, new[] { 2, 3, 5 })]
    [InlineData(new[] { 2, 3, 5 }, new[] { 5 })]
    [InlineData(new[] { 2, 3, 5 }, new[] { 3, 1 })]
    [InlineData(new[] { 2, 1, 5 }, new[] { 1, 7, 1 })]
    [InlineData(new[] { 1 }, new[] { 4, 33 })]
    [InlineData(new[] { 2, 17, 9, 9 }, new[] { 1, 17, 1, 1 })]
    [InlineData(new[] { 3, 65, 1 }, new[] { 3, 1, 257 })]
    public void Binary_Broadcasting_MatchesReference(int[] sa, int[] sb)
    {
        using var scope = TensorScope.Begin();
        var a = TestUtil.Random(1, sa); var b = TestUtil.Random(2, sb);
        for (int i = 0; i < b.Numel; i++) b.Span[i] += 3f; // keep division well-conditioned
        var outShape = ShapeUtil.Broadcast(sa, sb, "test");
        foreach (var (name, fn, f) in new (string, Func<Tensor, Tensor, Tensor>, Func<float, float, float>)[]
                 { ("add", Ops.Add, (x, y) => x + y), ("sub", Ops.Sub, (x, y) => x - y), ("mul", Ops.Mul, (x, y) => x * y), ("div", Ops.Div, (x, y) => x / y) })
        {
            var c = fn(a, b);
            Assert.Equal(outShape, c.ShapeArray());
            var expected = ReferenceBroadcast(a, b, outShape, f);
            TestUtil.AssertClose(expected, c.Span, 1e-6f, 1e-6f, $"{name} {ShapeUtil.Format(sa)} {ShapeUtil.Format(sb)}");
        }
    }

    internal static float[] ReferenceBroadcast(Tensor a, Tensor b, int[] outShape, Func<float, float, float> f)
    {
        int r = outShape.Length;
        var res = new float[ShapeUtil.Numel(outShape)];
        var idx = new int[r];
        for (long flat = 0; flat < res.Length; flat++)
        {
            long rem = flat;
            for (int i = r - 1; i >= 0; i--) { idx[i] = (int)(rem % outShape[i]); rem /= outShape[i]; }
            res[flat] = f(a.Span[(int)Index(a, idx)], b.Span[(int)Index(b, idx)]);
        }
        return res;
    }

    private static long Index(Tensor t, int[] outIdx)
    {
        long off = 0;
        int shift = outIdx.Length - t.Rank;
        for (int i = 0; i < t.Rank; i++) off = off * t.Shape[i] + (t.Shape[i] == 1 ? 0 : outIdx[i + shift]);
        return off;
    }

    [Fact]
    public void Add_IncompatibleShapes_ThrowsNamingBothShapes()
    {
        using var scope = TensorScope.Begin();
        var ex = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Zeros(2, 3), Tensor.Zeros(4)));
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Contains("[4]", ex.Message);
    }

    [Fact]
    public void Empty_NegativeDim_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Empty(2, -1));
        Assert.Contains("[2, -1]", ex.Message);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(2, 17)]
    [InlineData(4, 40)]
    [InlineData(3, 1280)]
    public void GeluGate_OddWidths_MatchesDoubleReference(int rows, int n)
    {
        using var scope = TensorScope.Begin();
        var data = TestUtil.RandomArray(rows * 31 + n, (long)rows * 2 * n, scale: 4f);
        var y = Ops.GeluGate(Tensor.FromArray(data, rows, 2 * n));
        Assert.Equal(new[] { rows, n }, y.ShapeArray());
        var expected = new float[rows * n];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++)
            {
                double h = data[r * 2 * n + j], g = data[r * 2 * n + n + j];
                expected[r * n + j] = (float)(h * 0.5 * g * (1 + ErfMath.ErfRef(g / Math.Sqrt(2))));
            }
        TestUtil.AssertClose(expected, y.Span, atol: 1e-5f, rtol: 2e-6f, what: $"GeluGate [{rows}, {2 * n}]");
    }

    // Where the half width is a multiple of the vector width, the fused pass takes every element through the same
    // vector operations as Narrow, Gelu and Mul: the inference path of FeedForward gives the training path's bits.
    [Theory]
    [InlineData(5, 64)]
    [InlineData(3, 1280)]
    [InlineData(2, 2, 3, 320)]
    public void GeluGate_VectorWidths_BitwiseEqualsNarrowGeluMul(params int[] shape)
    {
        using var scope = TensorScope.Begin();
        var full = (int[])shape.Clone();
        full[^1] *= 2;
        var x = TestUtil.Random(17, full);
        int n = shape[^1];
        var unfused = Ops.Mul(Ops.Narrow(x, -1, 0, n), Ops.Gelu(Ops.Narrow(x, -1, n, n))).ToArray();
        var fused = Ops.GeluGate(x).ToArray();
        int bad = unfused.Zip(fused).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
        Assert.True(bad == 0, $"{bad} of {fused.Length} differ, max abs diff {TestUtil.MaxAbsDiff(unfused, fused)}");
    }

    // The backward rule gives the gradient that Narrow, Gelu and Mul's rules give, bit for bit at vector widths.
    [Theory]
    [InlineData(5, 64)]
    [InlineData(2, 3, 320)]
    public void GeluGate_Backward_BitwiseEqualsNarrowGeluMul(params int[] shape)
    {
        using var scope = TensorScope.Begin();
        var full = (int[])shape.Clone();
        full[^1] *= 2;
        int n = shape[^1];
        var upstream = TestUtil.Random(19, shape);
        float[] Grad(Func<Tensor, Tensor> f)
        {
            var x = TestUtil.Random(18, full);
            x.RequiresGrad = true;
            Ops.SumAll(Ops.Mul(f(x), upstream)).Backward();
            return x.Grad!.ToArray();
        }
        var unfused = Grad(x => Ops.Mul(Ops.Narrow(x, -1, 0, n), Ops.Gelu(Ops.Narrow(x, -1, n, n))));
        var fused = Grad(Ops.GeluGate);
        int bad = unfused.Zip(fused).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
        Assert.True(bad == 0, $"{bad} of {fused.Length} differ, max abs diff {TestUtil.MaxAbsDiff(unfused, fused)}");
    }

    [Fact]
    public void GeluGate_OddLastDim_ThrowsNamingTheTensor()
    {
        using var scope = TensorScope.Begin();
        var odd = TestUtil.Random(3, 2, 5);
        Assert.Contains("[2, 5]", Assert.Throws<ArgumentException>(() => Ops.GeluGate(odd)).Message);
    }

    // This class narrows the vectors while other test classes compare runs bit for bit: the setting holds for the
    // flow that made it (and threads it starts), not for a thread that does not inherit it.
    [Fact]
    public void UseVector512_SetInOneFlow_OtherFlowsKeepTheDefault()
    {
        bool OnThread(bool inherit)
        {
            bool seen = false;
            var thread = new Thread(() => seen = VectorDriver.UseVector512);
            if (inherit) thread.Start();
            else using (ExecutionContext.SuppressFlow()) thread.Start();
            thread.Join();
            return seen;
        }
        bool saved = VectorDriver.UseVector512, defaultValue = OnThread(inherit: false);
        try
        {
            VectorDriver.UseVector512 = !defaultValue;
            Assert.Equal(!defaultValue, VectorDriver.UseVector512);
            Assert.Equal(!defaultValue, OnThread(inherit: true));
            Assert.Equal(defaultValue, OnThread(inherit: false));
        }
        finally { VectorDriver.UseVector512 = saved; }
    }
}
