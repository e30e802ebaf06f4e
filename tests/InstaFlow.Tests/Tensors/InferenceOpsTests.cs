// The forward-only ops of the FID Inception against plain loops on odd sizes: average pooling with and without
// counting the padding, bilinear resize (align_corners=False, up and down), inference BatchNorm (+ReLU); and their
// refusal to run while gradients are recorded.
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

public class InferenceOpsTests
{
    [Theory]
    [InlineData(2, 3, 7, 9, 3, 1, 1, false)]
    [InlineData(2, 3, 7, 9, 3, 1, 1, true)]
    [InlineData(1, 2, 8, 5, 3, 2, 1, false)]
    [InlineData(1, 1, 11, 6, 5, 2, 2, false)]
    [InlineData(1, 2, 6, 7, 2, 2, 0, true)]
    public void AvgPool2d_OddSizes_MatchesLoops(int b, int c, int h, int w, int k, int s, int pad, bool countPad)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(h * 31 + w + k, b, c, h, w);
        var y = Ops.AvgPool2d(x, k, s, pad, countPad);
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        Assert.Equal(new[] { b, c, oh, ow }, y.ShapeArray());
        var expected = new float[y.Numel];
        for (int p = 0; p < b * c; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    double sum = 0; int inside = 0, window = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                        {
                            int iy = oy * s - pad + dy, ix = ox * s - pad + dx;
                            // PyTorch's divisor with padding counted: the window cut to the padded image
                            if (iy < h + pad && ix < w + pad) window++;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            sum += x.Span[(p * h + iy) * w + ix];
                            inside++;
                        }
                    expected[(p * oh + oy) * ow + ox] = (float)(sum / (countPad ? window : inside));
                }
        TestUtil.AssertClose(expected, y.Span, 1e-6f, 1e-6f, $"avgpool {h}x{w} k{k} s{s} p{pad} countPad={countPad}");
    }

    [Fact]
    public void ResizeBilinear_2x2To4x4_MatchesTorchValues()
    {
        using var scope = TensorScope.Begin();
        var y = Ops.ResizeBilinear(Tensor.FromArray([1, 2, 3, 4], 1, 1, 2, 2), 4, 4);
        // torch.nn.functional.interpolate(tensor([[1., 2.], [3., 4.]])[None, None], size=4, mode='bilinear', align_corners=False)
        float[] torch = [1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4];
        TestUtil.AssertClose(torch, y.Span, 1e-7f, 0, "2x2 -> 4x4");
    }

    [Theory]
    [InlineData(5, 7, 11, 4)]
    [InlineData(9, 13, 4, 5)]
    [InlineData(3, 1, 8, 3)]
    [InlineData(64, 64, 299, 299)]
    public void ResizeBilinear_OddSizes_MatchesDoubleLoops(int h, int w, int oh, int ow)
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(h + w * 7, 2, 3, h, w);
        var y = Ops.ResizeBilinear(x, oh, ow);
        static (int I0, int I1, double L) Tap(int o, int inSize, int outSize)
        {
            // PyTorch's ratio in/out is a float
            double src = Math.Max((o + 0.5) * ((float)inSize / outSize) - 0.5, 0);
            int i0 = Math.Min((int)Math.Floor(src), inSize - 1);
            return (i0, Math.Min(i0 + 1, inSize - 1), src - i0);
        }
        var expected = new float[y.Numel];
        for (int p = 0; p < 6; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    var (y0, y1, ly) = Tap(oy, h, oh);
                    var (x0, x1, lx) = Tap(ox, w, ow);
                    double At(int iy, int ix) => x.Span[(p * h + iy) * w + ix];
                    expected[(p * oh + oy) * ow + ox] = (float)((1 - ly) * ((1 - lx) * At(y0, x0) + lx * At(y0, x1)) + ly * ((1 - lx) * At(y1, x0) + lx * At(y1, x1)));
                }
        TestUtil.AssertClose(expected, y.Span, 2e-6f, 0, $"resize {h}x{w} -> {oh}x{ow}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BatchNormInference_OddSpatial_MatchesFormula(bool relu)
    {
        using var scope = TensorScope.Begin();
        int b = 2, c = 3, h = 5, w = 7;
        var x = TestUtil.Random(1, b, c, h, w);
        var mean = Tensor.FromArray([0.1f, -0.2f, 0.3f], c);
        var var = Tensor.FromArray([0.5f, 2f, 0.01f], c);
        var gamma = Tensor.FromArray([1.5f, -0.7f, 0.2f], c);
        var beta = Tensor.FromArray([0f, 0.3f, -0.1f], c);
        var y = Ops.BatchNormInference(x, mean, var, gamma, beta, 1e-3f, relu);
        var expected = new float[x.Numel];
        for (int i = 0; i < expected.Length; i++)
        {
            int ch = i / (h * w) % c;
            double v = (x.Span[i] - mean.Span[ch]) / Math.Sqrt(var.Span[ch] + 1e-3) * gamma.Span[ch] + beta.Span[ch];
            expected[i] = (float)(relu ? Math.Max(v, 0) : v);
        }
        TestUtil.AssertClose(expected, y.Span, 1e-5f, 1e-6f, $"batchnorm relu={relu}");
    }

    [Fact]
    public void ForwardOnlyOps_RecordingGradients_Throw()
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(2, 1, 2, 5, 5);
        x.RequiresGrad = true;
        var ones = Tensor.Full(1f, 2);
        Assert.Contains("forward-only", Assert.Throws<InvalidOperationException>(() => Ops.AvgPool2d(x, 3, 1, 1, false)).Message);
        Assert.Contains("NoGrad", Assert.Throws<InvalidOperationException>(() => Ops.ResizeBilinear(x, 7, 7)).Message);
        Assert.Throws<InvalidOperationException>(() => Ops.BatchNormInference(x, ones, ones, ones, ones, 1e-3f));
        using var noGrad = InstaFlow.Tensors.Autograd.GradMode.NoGrad();
        Assert.Equal(new[] { 1, 2, 5, 5 }, Ops.AvgPool2d(x, 3, 1, 1, false).ShapeArray());
    }

    [Fact]
    public void Pooling_PaddingAboveHalfKernel_ThrowsNamingIt()
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(3, 1, 1, 5, 5);
        Assert.Contains("padding 2", Assert.Throws<ArgumentException>(() => Ops.MaxPool2d(x, 3, 1, 2)).Message);
        Assert.Contains("padding 2", Assert.Throws<ArgumentException>(() => Ops.AvgPool2d(x, 3, 1, 2)).Message);
    }
}
