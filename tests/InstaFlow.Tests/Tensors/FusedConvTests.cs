// The convs fused with what precedes them at inference: Ops.GroupNormSiluConv2d (the ResNet half-block, group norm +
// SiLU applied inside the Winograd input transform) against the unfused ops (bit for bit where both take the vector
// path) and double loops on odd shapes; Ops.UpsampleNearest2xConv2d against upsampling then the conv (bit for bit).
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

/// <summary>Runs a test body with the Winograd path, its algorithm and the thread count set, and puts them back.</summary>
internal static class WinogradSetting
{
    public static T Run<T>(WinogradMode mode, WinogradTile? tile, int threads, Func<T> body)
    {
        int saved = Par.Threads;
        var savedMode = Conv2dWinograd.Mode;
        var savedTile = Conv2dWinograd.TileOverride;
        try
        {
            Par.Threads = threads;
            Conv2dWinograd.Mode = mode;
            Conv2dWinograd.TileOverride = tile;
            return body();
        }
        finally { Par.Threads = saved; Conv2dWinograd.Mode = savedMode; Conv2dWinograd.TileOverride = savedTile; }
    }
}

[Collection(EngineSettings.Name)]
public unsafe class GroupNormSiluConvTests
{
    private const float Eps = 1e-6f;

    private static (Tensor X, Tensor Gamma, Tensor Beta, Tensor W, Tensor B) Data(int batch, int inC, int h, int w, int outC, int seed)
    {
        // an offset and a spread unlike N(0, 1), so the normalization matters
        var x = Ops.AddScalar(Ops.MulScalar(TestUtil.Random(seed, batch, inC, h, w), 3f), 0.7f);
        return (x, Ops.AddScalar(TestUtil.Random(seed + 1, inC), 1f), TestUtil.Random(seed + 2, inC),
            TestUtil.Random(seed + 3, outC, inC, 3, 3), TestUtil.Random(seed + 4, outC));
    }

    private static Tensor Unfused(Tensor x, int groups, Tensor gamma, Tensor beta, Tensor w, Tensor b) =>
        Ops.Conv2d(Ops.GroupNormSilu(x, groups, gamma, beta, Eps), w, b, 1, 1);

    // H x W a multiple of 16: every activation takes the vector path in both, so the fused conv has the same bits.
    // Batch 2 makes blocks whose lanes span two images; 352 -> 360 channels at 20x16 run as one wide block.
    [Theory]
    [InlineData(WinogradTile.F4, 1, 64, 16, 16, 64, 32)]
    [InlineData(WinogradTile.F6, 1, 64, 16, 16, 64, 32)]
    [InlineData(WinogradTile.F4, 2, 32, 8, 12, 48, 8)]
    [InlineData(WinogradTile.F6, 2, 32, 8, 12, 48, 8)]
    [InlineData(WinogradTile.F4, 1, 352, 20, 16, 360, 32)]
    [InlineData(WinogradTile.F6, 3, 24, 6, 8, 20, 4)]
    public void Fused_SpatialMultipleOf16_BitwiseEqualsUnfused(WinogradTile tile, int batch, int inC, int h, int w, int outC, int groups)
    {
        var (x, gamma, beta, wt, b) = Data(batch, inC, h, w, outC, inC + h);
        var (fused, plain) = WinogradSetting.Run(WinogradMode.Always, tile, 2,
            () => (Ops.GroupNormSiluConv2d(x, groups, gamma, beta, Eps, wt, b, 1), Unfused(x, groups, gamma, beta, wt, b)));
        float diff = TestUtil.MaxAbsDiff(plain.Span, fused.Span);
        Assert.True(plain.Span.SequenceEqual(fused.Span), $"{tile} [{batch},{inC},{h},{w}]->{outC}: fused differs from unfused by up to {diff:E2}");
    }

    // Odd sizes: border tiles on every side, a 1x1 image (8 of 9 taps padding, which must stay zero after the SiLU),
    // channels not a multiple of anything, one and two threads.
    [Theory]
    [InlineData(WinogradTile.F4, 1, 4, 1, 1, 3, 2, 1)]
    [InlineData(WinogradTile.F6, 1, 4, 1, 1, 3, 2, 2)]
    [InlineData(WinogradTile.F4, 2, 6, 7, 9, 5, 3, 2)]
    [InlineData(WinogradTile.F6, 2, 6, 7, 9, 5, 3, 1)]
    [InlineData(WinogradTile.F4, 1, 18, 13, 20, 7, 6, 2)]
    [InlineData(WinogradTile.F6, 1, 18, 13, 20, 7, 6, 2)]
    public void Fused_OddShapes_MatchesDoubleReference(WinogradTile tile, int batch, int inC, int h, int w, int outC, int groups, int threads)
    {
        var (x, gamma, beta, wt, b) = Data(batch, inC, h, w, outC, 11 * inC + w);
        var (fused, plain) = WinogradSetting.Run(WinogradMode.Always, tile, threads,
            () => (Ops.GroupNormSiluConv2d(x, groups, gamma, beta, Eps, wt, b, 1), Unfused(x, groups, gamma, beta, wt, b)));
        float tol = (tile == WinogradTile.F6 ? 5 : 1) * (2e-5f * MathF.Sqrt(inC * 9) + 1e-5f);
        TestUtil.AssertClose(Reference(x, groups, gamma, beta, wt, b), fused.Span.ToArray(), tol, 0, $"{tile} [{batch},{inC},{h},{w}]->{outC} vs double loops");
        TestUtil.AssertClose(plain, fused, 1e-5f, 1e-5f, "fused vs unfused");
    }

    private static float[] Reference(Tensor x, int groups, Tensor gamma, Tensor beta, Tensor w, Tensor b)
    {
        int batch = x.Dim(0), c = x.Dim(1), h = x.Dim(2), wd = x.Dim(3), outC = w.Dim(0);
        var act = new float[x.Numel];
        var y = new float[(long)batch * outC * h * wd];
        fixed (float* px = x.Span, pg = gamma.Span, pb = beta.Span, pa = act, pw = w.Span, pbias = b.Span, py = y)
        {
            NormsReference.GroupNorm(px, pg, pb, pa, batch, c, (long)h * wd, groups, Eps);
            for (long i = 0; i < act.Length; i++) act[i] = (float)(act[i] / (1 + Math.Exp(-(double)act[i])));
            Conv2dReference.Forward(new Conv2dShape(batch, c, h, wd, outC, 3, 3, 1, 1, 1, 1, 1), pa, pw, pbias, py);
        }
        return y;
    }

    // Where the conv does not take the Winograd path the op is the two unfused ops.
    [Fact]
    public void Fused_DirectPath_EqualsUnfused()
    {
        var (x, gamma, beta, wt, b) = Data(1, 16, 9, 9, 8, 3);
        var (fused, plain) = WinogradSetting.Run(WinogradMode.Never, null, Par.Threads,
            () => (Ops.GroupNormSiluConv2d(x, 4, gamma, beta, Eps, wt, b, 1), Unfused(x, 4, gamma, beta, wt, b)));
        Assert.Equal(plain.Span.ToArray(), fused.Span.ToArray());
    }

    [Fact]
    public void Fused_RecordingGradients_Throws()
    {
        var (x, gamma, beta, wt, b) = Data(1, 4, 5, 5, 4, 9);
        wt.RequiresGrad = true;
        var e = Assert.Throws<InvalidOperationException>(() => Ops.GroupNormSiluConv2d(x, 2, gamma, beta, Eps, wt, b, 1));
        Assert.Contains("inference-only", e.Message);
    }

    [Fact]
    public void Fused_WeightOfOtherChannels_ThrowsNamingBoth()
    {
        var (x, gamma, beta, _, b) = Data(1, 8, 5, 5, 4, 9);
        var wrong = TestUtil.Random(1, 4, 6, 3, 3);
        var e = Assert.Throws<ArgumentException>(() => Ops.GroupNormSiluConv2d(x, 2, gamma, beta, Eps, wrong, b, 1));
        Assert.Contains("8 channels", e.Message);
    }
}

[Collection(EngineSettings.Name)]
public class UpsampleConvTests
{
    private static Tensor Unfused(Tensor x, Tensor w, Tensor b) => Ops.Conv2d(Ops.UpsampleNearest2x(x), w, b, 1, 1);

    // The conv reads the same tap values either way, so the bits are the same: odd half-size maps (border tiles on
    // every side), batch 2, a 1x1 map, one and two threads, and 352 -> 360 channels as one wide block.
    [Theory]
    [InlineData(WinogradTile.F4, 1, 8, 3, 5, 6, 1)]
    [InlineData(WinogradTile.F6, 1, 8, 3, 5, 6, 2)]
    [InlineData(WinogradTile.F4, 2, 17, 7, 4, 9, 2)]
    [InlineData(WinogradTile.F6, 2, 17, 7, 4, 9, 1)]
    [InlineData(WinogradTile.F4, 1, 3, 1, 1, 2, 2)]
    [InlineData(WinogradTile.F6, 1, 64, 16, 13, 32, 2)]
    [InlineData(WinogradTile.F4, 1, 352, 10, 8, 360, 2)]
    public void Fused_Shapes_BitwiseEqualsUpsampleThenConv(WinogradTile tile, int batch, int inC, int h, int w, int outC, int threads)
    {
        var x = TestUtil.Random(inC + h, batch, inC, h, w);
        var wt = TestUtil.Random(inC + h + 1, outC, inC, 3, 3);
        var b = TestUtil.Random(inC + h + 2, outC);
        var (fused, plain) = WinogradSetting.Run(WinogradMode.Always, tile, threads, () => (Ops.UpsampleNearest2xConv2d(x, wt, b, 1), Unfused(x, wt, b)));
        Assert.Equal(plain.ShapeArray(), fused.ShapeArray());
        float diff = TestUtil.MaxAbsDiff(plain.Span, fused.Span);
        Assert.True(plain.Span.SequenceEqual(fused.Span), $"{tile} [{batch},{inC},{h},{w}]->{outC}: fused differs from unfused by up to {diff:E2}");
    }

    [Fact]
    public void Fused_DirectPath_EqualsUnfused()
    {
        var x = TestUtil.Random(1, 1, 16, 5, 6);
        var wt = TestUtil.Random(2, 8, 16, 3, 3);
        var b = TestUtil.Random(3, 8);
        var (fused, plain) = WinogradSetting.Run(WinogradMode.Never, null, Par.Threads, () => (Ops.UpsampleNearest2xConv2d(x, wt, b, 1), Unfused(x, wt, b)));
        Assert.Equal(plain.Span.ToArray(), fused.Span.ToArray());
    }

    [Fact]
    public void Fused_RecordingGradients_Throws()
    {
        var x = TestUtil.Random(1, 1, 4, 3, 3);
        x.RequiresGrad = true;
        var e = Assert.Throws<InvalidOperationException>(() => Ops.UpsampleNearest2xConv2d(x, TestUtil.Random(2, 4, 4, 3, 3), null, 1));
        Assert.Contains("inference-only", e.Message);
    }
}
