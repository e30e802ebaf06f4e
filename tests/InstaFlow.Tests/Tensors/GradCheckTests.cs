// Finite-difference gradient checks for every op with a backward rule.
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

public class GradCheckTests
{
    /// <summary>
    /// Checks d(sum(f(x) * R))/dx against central differences at up to `probes` random elements of each input.
    /// </summary>
    internal static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, string what, float eps = 1e-2f, float tol = 2e-2f, int probes = 12, int seed = 0)
    {
        using var scope = TensorScope.Begin();
        foreach (var x in inputs) { x.RequiresGrad = true; x.Grad = null; }
        var y = f(inputs);
        var r = TestUtil.Random(seed + 99, y.ShapeArray());
        var loss = Ops.SumAll(Ops.Mul(y, r));
        loss.Backward();
        var rng = new Random(seed);
        for (int k = 0; k < inputs.Length; k++)
        {
            var x = inputs[k];
            Assert.True(x.Grad != null, $"{what}: input {k} got no gradient");
            float maxErr = 0;
            for (int p = 0; p < Math.Min(probes, x.Numel); p++)
            {
                int i = probes >= x.Numel ? p : rng.Next((int)x.Numel);
                float orig = x.Span[i];
                double Eval(float v)
                {
                    x.Span[i] = v;
                    using var s2 = TensorScope.Begin();
                    using var ng = InstaFlow.Tensors.Autograd.GradMode.NoGrad();
                    var yy = f(inputs);
                    double acc = 0;
                    var ys = yy.Span; var rs = r.Span;
                    for (int j = 0; j < ys.Length; j++) acc += (double)ys[j] * rs[j];
                    return acc;
                }
                double num = (Eval(orig + eps) - Eval(orig - eps)) / (2 * eps);
                x.Span[i] = orig;
                float ana = x.Grad!.Span[i];
                float err = (float)Math.Abs(num - ana) / (1f + (float)Math.Abs(num));
                maxErr = Math.Max(maxErr, err);
            }
            Assert.True(maxErr <= tol, $"{what}: input {k} {x.Describe()}: max relative gradient error {maxErr} > {tol}");
            x.Grad!.Dispose(); x.Grad = null;
        }
    }

    private static Tensor R(int seed, params int[] shape) => TestUtil.Random(seed, shape);

    private static Tensor Positive(int seed, params int[] shape)
    {
        var t = TestUtil.Random(seed, shape);
        for (int i = 0; i < t.Numel; i++) t.Span[i] = 1.5f + t.Span[i];
        return t;
    }

    [Fact] public void Add_Broadcast_GradientMatchesFiniteDifference() => Check(x => Ops.Add(x[0], x[1]), new[] { R(1, 2, 3, 5), R(2, 3, 1) }, "add");
    [Fact] public void Sub_Broadcast_GradientMatchesFiniteDifference() => Check(x => Ops.Sub(x[0], x[1]), new[] { R(1, 2, 3, 5), R(2, 5) }, "sub");
    [Fact] public void Mul_Broadcast_GradientMatchesFiniteDifference() => Check(x => Ops.Mul(x[0], x[1]), new[] { R(1, 2, 3, 5), R(2, 1, 3, 1) }, "mul");
    [Fact] public void Div_Broadcast_GradientMatchesFiniteDifference() => Check(x => Ops.Div(x[0], x[1]), new[] { R(1, 4, 7), Positive(2, 7) }, "div");
    [Fact] public void Scalars_GradientMatchesFiniteDifference() => Check(x => Ops.AddScalar(Ops.MulScalar(x[0], -2.5f), 3f), new[] { R(1, 3, 4) }, "scalar");
    [Fact] public void Clamp_GradientMatchesFiniteDifference() => Check(x => Ops.Clamp(x[0], -0.5f, 0.4f), new[] { R(5, 23) }, "clamp", eps: 1e-3f);
    [Fact] public void MaxPool2d_GradientMatchesFiniteDifference() => Check(x => Ops.MaxPool2d(x[0], 2, 2), new[] { R(29, 2, 3, 7, 9) }, "maxpool", eps: 1e-3f);
    [Fact] public void MaxPool2dOverlapping_GradientMatchesFiniteDifference() => Check(x => Ops.MaxPool2d(x[0], 3, 2), new[] { R(30, 1, 2, 7, 8) }, "maxpool 3/2", eps: 1e-3f);
    [Fact] public void GeluGate_GradientMatchesFiniteDifference() => Check(x => Ops.GeluGate(x[0]), new[] { R(31, 3, 2, 10) }, "gelu gate", eps: 1e-3f);
    [Fact] public void Square_GradientMatchesFiniteDifference() => Check(x => Ops.Square(x[0]), new[] { R(1, 9) }, "square");

    [Theory]
    [InlineData("exp")] [InlineData("sqrt")] [InlineData("sigmoid")] [InlineData("silu")] [InlineData("tanh")]
    [InlineData("gelu")] [InlineData("gelu_tanh")] [InlineData("quick_gelu")] [InlineData("neg")] [InlineData("relu")]
    public void Unary_GradientMatchesFiniteDifference(string op)
    {
        Func<Tensor, Tensor> f = op switch
        {
            "exp" => Ops.Exp, "sqrt" => Ops.Sqrt, "sigmoid" => Ops.Sigmoid, "silu" => Ops.Silu, "tanh" => Ops.Tanh,
            "gelu" => Ops.Gelu, "gelu_tanh" => Ops.GeluTanh, "quick_gelu" => Ops.QuickGelu, "relu" => Ops.Relu, _ => Ops.Neg,
        };
        Check(x => f(x[0]), new[] { op == "sqrt" ? Positive(3, 17) : R(3, 17) }, op, eps: 1e-3f);
    }

    [Theory]
    [InlineData(0)] [InlineData(1)] [InlineData(2)]
    public void Reductions_GradientMatchesFiniteDifference(int dim)
    {
        Check(x => Ops.Sum(x[0], dim), new[] { R(4, 3, 4, 5) }, "sum");
        Check(x => Ops.Mean(x[0], dim, keepDim: true), new[] { R(5, 3, 4, 5) }, "mean");
        Check(x => Ops.Var(x[0], dim), new[] { R(6, 3, 4, 5) }, "var");
    }

    [Fact] public void Softmax_GradientMatchesFiniteDifference() => Check(x => Ops.Softmax(x[0]), new[] { R(7, 3, 19) }, "softmax", eps: 1e-3f);
    [Fact] public void MatMul2d_GradientMatchesFiniteDifference() => Check(x => Ops.MatMul(x[0], x[1]), new[] { R(8, 5, 7), R(9, 7, 3) }, "matmul");
    [Fact] public void MatMulBatched_GradientMatchesFiniteDifference() => Check(x => Ops.MatMul(x[0], x[1]), new[] { R(8, 2, 5, 7), R(9, 2, 7, 3) }, "bmm");
    [Fact] public void MatMulTransB_GradientMatchesFiniteDifference() => Check(x => Ops.MatMul(x[0], x[1], transB: true), new[] { R(8, 2, 5, 7), R(9, 2, 3, 7) }, "bmm^T");
    [Fact] public void MatMulSharedB_GradientMatchesFiniteDifference() => Check(x => Ops.MatMul(x[0], x[1]), new[] { R(8, 2, 5, 7), R(9, 7, 3) }, "matmul shared");
    [Fact] public void Linear_GradientMatchesFiniteDifference() => Check(x => Ops.Linear(x[0], x[1], x[2]), new[] { R(10, 2, 3, 6), R(11, 4, 6), R(12, 4) }, "linear");
    [Fact] public void LinearNoBias_GradientMatchesFiniteDifference() => Check(x => Ops.Linear(x[0], x[1], null), new[] { R(10, 3, 6), R(11, 4, 6) }, "linear");
    [Fact] public void Permute_GradientMatchesFiniteDifference() => Check(x => Ops.Permute(x[0], 2, 0, 1), new[] { R(13, 2, 3, 4) }, "permute");
    [Fact] public void Narrow_GradientMatchesFiniteDifference() => Check(x => Ops.Narrow(x[0], 1, 1, 2), new[] { R(14, 2, 4, 3) }, "narrow");
    [Fact] public void Narrow_LastDimEdges_GradientMatchesFiniteDifference() => Check(x => Ops.Mul(Ops.Narrow(x[0], -1, 0, 3), Ops.Narrow(x[0], -1, 3, 3)), new[] { R(15, 2, 3, 6) }, "narrow halves");
    [Fact] public void Concat_GradientMatchesFiniteDifference() => Check(x => Ops.Concat(new[] { x[0], x[1] }, 1), new[] { R(15, 2, 3, 2), R(16, 2, 1, 2) }, "concat");
    [Fact] public void Pad_GradientMatchesFiniteDifference() => Check(x => Ops.Pad2d(x[0], 0, 1, 2, 1), new[] { R(17, 1, 2, 3, 3) }, "pad");
    [Fact] public void Reshape_GradientMatchesFiniteDifference() => Check(x => Ops.Mul(Ops.Reshape(x[0], 6, -1), Ops.Reshape(x[0], 6, -1)), new[] { R(18, 2, 3, 4) }, "reshape");

    [Theory]
    [InlineData(1, 0, 0, 0, 0, 1)]
    [InlineData(1, 1, 1, 1, 1, 3)]
    [InlineData(2, 0, 1, 0, 1, 3)]
    [InlineData(2, 1, 1, 1, 1, 3)]
    public void Conv2d_GradientMatchesFiniteDifference(int stride, int pt, int pb, int pl, int pr, int k)
    {
        Check(x => Ops.Conv2d(x[0], x[1], x[2], stride, pt, pb, pl, pr), new[] { R(20, 2, 3, 7, 6), R(21, 4, 3, k, k), R(22, 4) }, $"conv s{stride} k{k}");
    }

    [Fact] public void GroupNorm_GradientMatchesFiniteDifference() => Check(x => Ops.GroupNorm(x[0], 2, x[1], x[2], 1e-5f), new[] { R(23, 2, 4, 3, 3), R(24, 4), R(25, 4) }, "groupnorm", eps: 1e-3f);
    [Fact] public void LayerNorm_GradientMatchesFiniteDifference() => Check(x => Ops.LayerNorm(x[0], x[1], x[2], 1e-5f), new[] { R(26, 3, 2, 9), R(27, 9), R(28, 9) }, "layernorm", eps: 1e-3f);
    [Fact] public void UpsampleNearest_GradientMatchesFiniteDifference() => Check(x => Ops.UpsampleNearest(x[0], 5, 7), new[] { R(29, 1, 2, 3, 3) }, "upsample");
    [Fact] public void Upsample2x_GradientMatchesFiniteDifference() => Check(x => Ops.UpsampleNearest2x(x[0]), new[] { R(30, 1, 2, 3, 3) }, "upsample2x");
    [Fact] public void Embedding_GradientMatchesFiniteDifference() => Check(x => Ops.Embedding(x[0], new[] { 1, 3, 1, 0 }, 2, 2), new[] { R(31, 5, 3) }, "embedding", probes: 15);

    [Theory]
    [InlineData(false, 5, 5)]
    [InlineData(true, 6, 6)]
    [InlineData(false, 4, 7)]
    public void Attention_GradientMatchesFiniteDifference(bool causal, int tq, int tk)
    {
        Check(x => Ops.Attention(x[0], x[1], x[2], heads: 2, causal: causal), new[] { R(32, 2, tq, 6), R(33, 2, tk, 6), R(34, 2, tk, 6) }, $"attention causal={causal}", eps: 1e-3f);
    }

    [Theory]
    [InlineData(false, 17, 16)]
    [InlineData(true, 19, 19)]
    public void Attention_HeadDim8_GradientMatchesFiniteDifference(bool causal, int tq, int tk)
    {
        // Head dim 8 over 8-token gather runs plus a tail: the key-major forward and the transposed key gradients.
        Check(x => Ops.Attention(x[0], x[1], x[2], heads: 2, causal: causal), new[] { R(35, 1, tq, 16), R(36, 1, tk, 16), R(37, 1, tk, 16) }, $"attention d8 causal={causal}", eps: 1e-3f);
    }

    [Fact]
    public void Backward_GradientAccumulates_AcrossCalls()
    {
        using var scope = TensorScope.Begin();
        var w = R(40, 3);
        w.RequiresGrad = true;
        Ops.SumAll(Ops.MulScalar(w, 2f)).Backward();
        Ops.SumAll(Ops.MulScalar(w, 3f)).Backward();
        TestUtil.AssertClose(new[] { 5f, 5f, 5f }, w.Grad!.Span, 1e-6f, what: "accumulated grad");
    }

    [Fact]
    public void NoGrad_RecordsNothing()
    {
        using var scope = TensorScope.Begin();
        var w = R(41, 3);
        w.RequiresGrad = true;
        using (InstaFlow.Tensors.Autograd.GradMode.NoGrad())
        {
            var y = Ops.Exp(w);
            Assert.False(y.TracksGrad);
        }
        Assert.True(Ops.Exp(w).TracksGrad);
    }
}
