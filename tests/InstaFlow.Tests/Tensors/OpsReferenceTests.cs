// Reductions, softmax, permutation, nearest upsampling, concat and embedding against plain reference loops on odd
// shapes; argument errors that name the shapes; identical results for 1 and 2 threads.
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public class OpsReferenceTests
{
    public static IEnumerable<object[]> ReduceShapes()
    {
        foreach (var s in new[] { new[] { 7 }, new[] { 3, 17 }, new[] { 5, 33, 7 }, new[] { 2, 65, 1, 9 }, new[] { 257, 3 } })
            for (int d = 0; d < s.Length; d++) yield return new object[] { s, d };
    }

    [Theory]
    [MemberData(nameof(ReduceShapes))]
    public void SumMeanVar_OddShapes_MatchReference(int[] shape, int dim)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(shape.Sum() + dim, shape);
        var (outer, size, inner) = (ShapeUtil.Numel(shape[..dim]), shape[dim], ShapeUtil.Numel(shape[(dim + 1)..]));
        var sum = new float[outer * inner]; var mean = new float[sum.Length]; var var = new float[sum.Length];
        for (long o = 0; o < outer; o++)
            for (long i = 0; i < inner; i++)
            {
                double s = 0, s2 = 0;
                for (int k = 0; k < size; k++) s += x.Span[(int)((o * size + k) * inner + i)];
                double m = s / size;
                for (int k = 0; k < size; k++) { double d = x.Span[(int)((o * size + k) * inner + i)] - m; s2 += d * d; }
                sum[o * inner + i] = (float)s; mean[o * inner + i] = (float)m; var[o * inner + i] = size > 1 ? (float)(s2 / (size - 1)) : 0f;
            }
        TestUtil.AssertClose(sum, Ops.Sum(x, dim).Span, 1e-5f, 1e-5f, "sum");
        TestUtil.AssertClose(mean, Ops.Mean(x, dim).Span, 1e-6f, 1e-5f, "mean");
        if (size > 1) TestUtil.AssertClose(var, Ops.Var(x, dim).Span, 1e-6f, 1e-5f, "var");
    }

    [Theory]
    [InlineData(1, 1)] [InlineData(3, 7)] [InlineData(5, 17)] [InlineData(2, 65)] [InlineData(9, 257)] [InlineData(1, 4097)]
    public void Softmax_OddRows_MatchDoubleReference(int rows, int n)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(rows * n, rows, n);
        for (int i = 0; i < x.Numel; i++) x.Span[i] *= 20f;
        var y = Ops.Softmax(x);
        var expected = new float[rows * n];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < n; j++) max = Math.Max(max, x.Span[r * n + j]);
            for (int j = 0; j < n; j++) sum += Math.Exp(x.Span[r * n + j] - max);
            for (int j = 0; j < n; j++) expected[r * n + j] = (float)(Math.Exp(x.Span[r * n + j] - max) / sum);
        }
        TestUtil.AssertClose(expected, y.Span, 1e-6f, 1e-5f, $"softmax {rows}x{n}");
    }

    [Theory]
    [InlineData(new[] { 2, 3, 4 }, new[] { 2, 0, 1 })]
    [InlineData(new[] { 1, 7, 5, 3 }, new[] { 0, 2, 3, 1 })]
    [InlineData(new[] { 3, 1, 17, 9 }, new[] { 3, 2, 1, 0 })]
    [InlineData(new[] { 33, 65 }, new[] { 1, 0 })]
    public void Permute_OddShapes_MatchesIndexReference(int[] shape, int[] perm)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(7, shape);
        var y = Ops.Permute(x, perm);
        var inStrides = ShapeUtil.Strides(shape);
        var outShape = perm.Select(p => shape[p]).ToArray();
        var expected = new float[x.Numel];
        var idx = new int[shape.Length];
        for (long flat = 0; flat < expected.Length; flat++)
        {
            long rem = flat;
            for (int i = outShape.Length - 1; i >= 0; i--) { idx[i] = (int)(rem % outShape[i]); rem /= outShape[i]; }
            long src = 0;
            for (int i = 0; i < perm.Length; i++) src += (long)idx[i] * inStrides[perm[i]];
            expected[flat] = x.Span[(int)src];
        }
        Assert.Equal(outShape, y.ShapeArray());
        TestUtil.AssertClose(expected, y.Span, 0f, what: "permute");
    }

    [Theory]
    [InlineData(3, 4, 6, 8)] [InlineData(3, 4, 5, 7)] [InlineData(5, 7, 10, 14)] [InlineData(4, 4, 3, 3)]
    public void UpsampleNearest_Sizes_MatchPyTorchIndexRule(int h, int w, int oh, int ow)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(9, 2, 3, h, w);
        var y = Ops.UpsampleNearest(x, oh, ow);
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    // PyTorch nearest: src = min(floor(dst * (float)(in / out)), in - 1)
                    int si = Math.Min((int)MathF.Floor(i * ((float)h / oh)), h - 1), sj = Math.Min((int)MathF.Floor(j * ((float)w / ow)), w - 1);
                    Assert.Equal(x.Span[(c * h + si) * w + sj], y.Span[(c * oh + i) * ow + j]);
                }
    }

    [Fact]
    public void ConcatNarrowEmbedding_MatchReference()
    {
        using var scope = TensorScope.Begin();
        var a = TestUtil.Random(1, 2, 3, 5); var b = TestUtil.Random(2, 2, 4, 5);
        var c = Ops.Concat(new[] { a, b }, 1);
        TestUtil.AssertClose(a.Span, Ops.Narrow(c, 1, 0, 3).Span, 0f, what: "narrow a");
        TestUtil.AssertClose(b.Span, Ops.Narrow(c, 1, 3, 4).Span, 0f, what: "narrow b");
        var table = TestUtil.Random(3, 6, 4);
        var e = Ops.Embedding(table, new[] { 5, 0, 5 }, 3);
        TestUtil.AssertClose(table.Span[20..24], e.Span[0..4], 0f, what: "row 5");
        TestUtil.AssertClose(table.Span[0..4], e.Span[4..8], 0f, what: "row 0");
    }

    [Fact]
    public void MatMulConvLinear_ShapeMismatch_ThrowNamingBothShapes()
    {
        using var scope = TensorScope.Begin();
        var e1 = Assert.Throws<ArgumentException>(() => Ops.MatMul(Tensor.Zeros(2, 3), Tensor.Zeros(4, 5)));
        Assert.Contains("[2, 3]", e1.Message); Assert.Contains("[4, 5]", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => Ops.Conv2d(Tensor.Zeros(1, 3, 8, 8), Tensor.Zeros(4, 2, 3, 3), null));
        Assert.Contains("[1, 3, 8, 8]", e2.Message); Assert.Contains("[4, 2, 3, 3]", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => Ops.Linear(Tensor.Zeros(2, 7), Tensor.Zeros(4, 6), null));
        Assert.Contains("[2, 7]", e3.Message); Assert.Contains("[4, 6]", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => Ops.Conv2d(Tensor.Zeros(3, 8, 8), Tensor.Zeros(4, 3, 3, 3), null));
        Assert.Contains("rank 4", e4.Message);
    }

    [Fact]
    public void ElementwiseReduceSoftmax_OneVsTwoThreads_BitwiseEqual()
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(11, 3, 129, 257);
        var bias = TestUtil.Random(12, 129, 1);
        float[] Run()
        {
            using var s = TensorScope.Begin();
            var y = Ops.Softmax(Ops.Gelu(Ops.Add(x, bias)));
            return Ops.Sum(y, 1).ToArray().Concat(Ops.Var(y, 2).ToArray()).ToArray();
        }
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1; var one = Run();
            Par.Threads = 2; var two = Run();
            Assert.Equal(one, two);
        }
        finally { Par.Threads = saved; }
    }

    [Theory]
    [InlineData(2, 3, 7, 9, 2, 2, 0)]
    [InlineData(1, 2, 64, 64, 2, 2, 0)]
    [InlineData(1, 4, 7, 8, 3, 2, 0)]
    [InlineData(3, 1, 5, 5, 3, 3, 0)]
    [InlineData(2, 3, 7, 9, 3, 1, 1)]
    [InlineData(1, 2, 8, 5, 3, 2, 1)]
    [InlineData(1, 1, 6, 7, 5, 2, 2)]
    public void MaxPool2d_OddSizesAndTies_MatchesLoops(int b, int c, int h, int w, int k, int s, int pad)
    {
        using var scope = TensorScope.Begin();
        var data = TestUtil.RandomArray(h * w + k, (long)b * c * h * w);
        for (int i = 0; i < data.Length; i += 2) data[i] = Math.Max(data[i], 0f) * (i % 4 == 0 ? 0f : 1f); // zeros tie, as after ReLU
        var x = Tensor.FromArray(data, b, c, h, w);
        x.RequiresGrad = true;
        var y = Ops.MaxPool2d(x, k, s, pad);
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        Assert.Equal(new[] { b, c, oh, ow }, y.ShapeArray());
        var gy = TestUtil.RandomArray(7, y.Numel);
        var expectedGx = new float[data.Length];
        for (int p = 0; p < b * c; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    int best = -1;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                        {
                            int iy = oy * s - pad + dy, ix = ox * s - pad + dx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue; // -inf padding never wins
                            int i = p * h * w + iy * w + ix;
                            if (best < 0 || data[i] > data[best]) best = i;
                        }
                    int o = (p * oh + oy) * ow + ox;
                    Assert.Equal(data[best], y.Span[o]);
                    expectedGx[best] += gy[o];
                }
        Ops.SumAll(Ops.Mul(y, Tensor.FromArray(gy, y.ShapeArray()))).Backward();
        TestUtil.AssertClose(expectedGx, x.Grad!.Span, 1e-6f, 0, $"maxpool {b}x{c}x{h}x{w} k{k} s{s} p{pad} gradient");
    }
}
