// Winograd F(4x4, 3x3) and F(6x6, 3x3) conv vs the direct double-precision loops on random and odd shapes (edges, 1x1
// images, batches, odd channel counts, several K blocks and tile blocks), their error against float64, and the dispatch;
// the input and weight gradients taken by Winograd vs explicit double loops, across thread counts, and through autograd.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;
using Xunit.Abstractions;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public unsafe class ConvWinogradTests(ITestOutputHelper output)
{
    // Batch, InC, H, W, OutC (3x3, stride 1, padding 1)
    private static readonly int[][] ShapeList =
    {
        new[] { 1, 1, 1, 1, 1 },        // a 1x1 image: one tile, 8 of 9 taps in the padding
        new[] { 1, 3, 1, 7, 2 },
        new[] { 2, 7, 5, 6, 9 },        // H, W not multiples of 4, batch 2
        new[] { 3, 5, 4, 4, 6 },        // exactly one F(4x4) tile per image
        new[] { 2, 4, 6, 6, 5 },        // exactly one F(6x6) tile per image
        new[] { 1, 6, 13, 20, 3 },      // H, W not multiples of 6, partial tiles on both edges
        new[] { 1, 16, 9, 70, 20 },     // several tile blocks along a wide image
        new[] { 2, 33, 40, 36, 65 },    // blocks that span two images
        new[] { 1, 300, 10, 11, 7 },    // InC over one K block (256), OutC < one 6-row panel + 1
        new[] { 1, 64, 64, 64, 64 },    // a real shape: 256 F(4x4) tiles in 4 blocks, 121 F(6x6) tiles
    };

    /// <summary>Every shape with each algorithm.</summary>
    public static IEnumerable<object[]> Shapes() =>
        from tile in new[] { WinogradTile.F4, WinogradTile.F6 } from s in ShapeList select new object[] { tile, s[0], s[1], s[2], s[3], s[4] };

    /// <summary>Every shape, for the input gradient (always F(4x4)).</summary>
    public static IEnumerable<object[]> GradientShapes() => ShapeList.Select(s => new object[] { s[0], s[1], s[2], s[3], s[4] });

    private static (float[] X, float[] W, float[] B) Data(int batch, int inC, int h, int w, int outC, int seed) =>
        (TestUtil.RandomArray(seed, (long)batch * inC * h * w), TestUtil.RandomArray(seed + 1, (long)outC * inC * 9),
            TestUtil.RandomArray(seed + 2, outC));

    private const int Reference = 0, Direct = 1;

    /// <summary>path: Reference (double loops), Direct (implicit GEMM), or a WinogradTile (4 or 6).</summary>
    private static float[] Run(int path, Conv2dShape s, float[] x, float[] w, float[] b, bool withBias)
    {
        var y = new float[(long)s.Batch * s.OutC * s.OutH * s.OutW];
        fixed (float* px = x, pw = w, pb = b, py = y)
        {
            float* bias = withBias ? pb : null;
            if (path == Reference) Conv2dReference.Forward(s, px, pw, bias, py);
            else if (path == Direct) Conv2d.Forward(s, px, pw, bias, py);
            else Conv2dWinograd.Forward(s, px, new StoredData((byte*)pw, TensorDType.F32), bias, py, (WinogradTile)path);
        }
        return y;
    }

    private static int Path(WinogradTile tile) => (int)tile;

    /// <summary>
    /// Inputs and weights in [-1, 1): outputs grow like sqrt(9 InC), and the transforms multiply rounding errors by up
    /// to ~25 (F(4x4) input side) and 8 (output side), so the bound is 10x the direct path's; F(6x6)'s output
    /// transform scales by up to 32 and its weight transform carries factors like 32/45, so its bound is 5x higher.
    /// </summary>
    private static float Tolerance(WinogradTile tile, int channels) =>
        (tile == WinogradTile.F6 ? 5 : 1) * (2e-5f * MathF.Sqrt(channels * 9) + 1e-5f);

    private static Conv2dShape Shape(int batch, int inC, int h, int w, int outC) => new(batch, inC, h, w, outC, 3, 3, 1, 1, 1, 1, 1);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_Shapes_MatchesReference(WinogradTile tile, int batch, int inC, int h, int w, int outC)
    {
        var s = Shape(batch, inC, h, w, outC);
        var (x, wt, b) = Data(batch, inC, h, w, outC, inC * 31 + h);
        foreach (bool withBias in new[] { true, false })
            TestUtil.AssertClose(Run(Reference, s, x, wt, b, withBias), Run(Path(tile), s, x, wt, b, withBias), Tolerance(tile, inC), 0,
                $"{tile} {s} bias={withBias}");
    }

    /// <summary>Max and RMS error against the float64 loops, for Winograd and the direct GEMM, printed for the docs.</summary>
    [Theory]
    [InlineData(WinogradTile.F4, 1, 128, 32, 32, 128)]
    [InlineData(WinogradTile.F4, 1, 320, 16, 16, 320)]
    [InlineData(WinogradTile.F4, 1, 512, 8, 8, 512)]
    [InlineData(WinogradTile.F6, 1, 128, 36, 36, 128)]
    [InlineData(WinogradTile.F6, 1, 256, 24, 24, 256)]
    [InlineData(WinogradTile.F6, 1, 512, 12, 12, 512)]
    public void Forward_ErrorVsFloat64_WithinItsBoundOfDirect(WinogradTile tile, int batch, int inC, int h, int w, int outC)
    {
        var s = Shape(batch, inC, h, w, outC);
        var (x, wt, b) = Data(batch, inC, h, w, outC, 7);
        var exact = Run(Reference, s, x, wt, b, true);
        var (wMax, wRms) = Errors(exact, Run(Path(tile), s, x, wt, b, true));
        var (dMax, dRms) = Errors(exact, Run(Direct, s, x, wt, b, true));
        double scale = Math.Sqrt(exact.Select(v => (double)v * v).Average());
        string line = $"{tile} {s}: output rms {scale:G3}; winograd max {wMax:G3} rms {wRms:G3}; direct max {dMax:G3} rms {dRms:G3}; ratio max {wMax / dMax:F1} rms {wRms / dRms:F1}";
        output.WriteLine(line);
        Console.WriteLine(line);
        // Measured: F(4x4) rms 8.5-12x and max 25-36x the direct path's, max 3-6e-5 of the output's rms; F(6x6)
        // rms 16-23x and max 40-55x the direct path's, max 7-10e-5 of the output's rms.
        double rmsBound = tile == WinogradTile.F6 ? 32 : 16, maxBound = tile == WinogradTile.F6 ? 2e-4 : 1e-4;
        Assert.True(wRms <= rmsBound * dRms && wMax <= maxBound * scale, line);
    }

    private static (double Max, double Rms) Errors(float[] exact, float[] got)
    {
        double max = 0, sq = 0;
        for (int i = 0; i < exact.Length; i++)
        {
            double d = Math.Abs((double)got[i] - exact[i]);
            max = Math.Max(max, d);
            sq += d * d;
        }
        return (max, Math.Sqrt(sq / exact.Length));
    }

    [Theory]
    [InlineData(WinogradTile.F4)]
    [InlineData(WinogradTile.F6)]
    public void Forward_OneAndTwoThreads_BitwiseEqual(WinogradTile tile)
    {
        var s = Shape(2, 33, 40, 36, 65);
        var (x, wt, b) = Data(2, 33, 40, 36, 65, 5);
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = Run(Path(tile), s, x, wt, b, true);
            Par.Threads = 2;
            Assert.Equal(one, Run(Path(tile), s, x, wt, b, true));
        }
        finally { Par.Threads = saved; }
    }

    // A small image of a wide layer runs as one block split between the threads: the same bits as the per-block path,
    // and within the Winograd tolerance of the double loops. The shape is checked to take the one-block path.
    [Theory]
    [InlineData(WinogradTile.F4, 1, 352, 20, 18, 360)]
    [InlineData(WinogradTile.F4, 2, 400, 7, 9, 352)]
    [InlineData(WinogradTile.F6, 1, 260, 20, 23, 300)]
    public void Forward_OneWideBlock_BitwiseEqualsBlocksAndMatchesReference(WinogradTile tile, int batch, int inC, int h, int w, int outC)
    {
        var s = Shape(batch, inC, h, w, outC);
        var (x, wt, b) = Data(batch, inC, h, w, outC, 17);
        int saved = Par.Threads;
        try
        {
            Par.Threads = 2;
            int m = (int)tile, points = (m + 2) * (m + 2);
            long tiles = (long)batch * ((h + m - 1) / m) * ((w + m - 1) / m);
            Assert.True(Conv2dWinograd.OneWideBlock(s, tiles, points), $"{s} would run in blocks: the test would compare a path with itself");
            var wide = Run(Path(tile), s, x, wt, b, true);
            Conv2dWinograd.ForceBlocks = true;
            var blocks = Run(Path(tile), s, x, wt, b, true);
            Conv2dWinograd.ForceBlocks = false;
            Assert.Equal(blocks, wide);
            TestUtil.AssertClose(Run(Reference, s, x, wt, b, true), wide, Tolerance(tile, inC), 0, $"{tile} {s} against the reference");
        }
        finally { Par.Threads = saved; Conv2dWinograd.ForceBlocks = false; }
    }

    [Fact]
    public void OpsConv2d_ModeSwitch_TakesEitherPathAndAgrees()
    {
        var x = TestUtil.Random(3, 1, 64, 20, 20);
        var w = TestUtil.Random(4, 64, 64, 3, 3);
        var b = TestUtil.Random(5, 64);
        var saved = Conv2dWinograd.Mode;
        try
        {
            Conv2dWinograd.Mode = WinogradMode.Never;
            var direct = Ops.Conv2d(x, w, b, 1, 1);
            Conv2dWinograd.Mode = WinogradMode.Always;
            var wino = Ops.Conv2d(x, w, b, 1, 1);
            Assert.NotEqual(direct.Span.ToArray(), wino.Span.ToArray());
            TestUtil.AssertClose(direct, wino, 2e-5f * MathF.Sqrt(64 * 9), 0, "Ops.Conv2d winograd vs direct");
            // A stride-2 conv never qualifies, whatever the mode.
            Assert.False(Conv2dWinograd.ShouldUse(new Conv2dShape(1, 64, 20, 20, 64, 3, 3, 2, 1, 1, 1, 1)));
        }
        finally { Conv2dWinograd.Mode = saved; }
    }

    // Tests switch the path while other test classes run convs in parallel: a setting holds only for the flow that
    // made it, so a flow that does not inherit it keeps the process default.
    [Fact]
    public void ModeAndTileOverride_SetInOneFlow_OtherFlowsKeepTheDefault()
    {
        WinogradMode savedMode = Conv2dWinograd.Mode;
        WinogradTile? savedTile = Conv2dWinograd.TileOverride;
        // What a new thread sees, inheriting this flow's settings or not.
        (WinogradMode Mode, WinogradTile? Tile) OnThread(bool inherit)
        {
            (WinogradMode, WinogradTile?) seen = default;
            var thread = new Thread(() => seen = (Conv2dWinograd.Mode, Conv2dWinograd.TileOverride));
            if (inherit) thread.Start();
            else using (ExecutionContext.SuppressFlow()) thread.Start();
            thread.Join();
            return seen;
        }
        (WinogradMode Mode, WinogradTile? Tile) Elsewhere() => OnThread(inherit: false);
        try
        {
            var defaults = Elsewhere();
            var mode = defaults.Mode == WinogradMode.Never ? WinogradMode.Always : WinogradMode.Never;
            var tile = defaults.Tile == WinogradTile.F6 ? WinogradTile.F4 : WinogradTile.F6;
            Conv2dWinograd.Mode = mode;
            Conv2dWinograd.TileOverride = tile;
            Assert.Equal((mode, (WinogradTile?)tile), (Conv2dWinograd.Mode, Conv2dWinograd.TileOverride));
            Assert.Equal((mode, (WinogradTile?)tile), OnThread(inherit: true));
            Assert.Equal(defaults, Elsewhere());
        }
        finally { Conv2dWinograd.Mode = savedMode; Conv2dWinograd.TileOverride = savedTile; }
    }

    // F(6x6) from 128x128 up where it streams no more transformed weights than F(4x4) (the VAE decoder's 256 and 512
    // pixel levels: 512 channels at 256x256 read U 8 times at 67 MB against F(4x4)'s 16 at 37.7 MB; at 128x128, 4
    // times against 4), F(4x4) elsewhere; the override pins either.
    [Theory]
    [InlineData(128, 128, 128, WinogradTile.F6)]
    [InlineData(512, 512, 128, WinogradTile.F6)]
    [InlineData(256, 256, 256, WinogradTile.F6)]
    [InlineData(256, 256, 512, WinogradTile.F6)]
    [InlineData(128, 128, 512, WinogradTile.F4)]
    [InlineData(64, 64, 128, WinogradTile.F4)]
    [InlineData(64, 64, 512, WinogradTile.F6)]     // VAE 64x64: both one wide block, F(6x6) 0.86x
    [InlineData(64, 64, 320, WinogradTile.F4)]     // UNet 64x64: F(4x4) runs in blocks
    [InlineData(128, 96, 128, WinogradTile.F4)]
    [InlineData(32, 32, 128, WinogradTile.F4)]
    public void TileFor_ImageAndChannels_F6WhereItStreamsLessWeight(int h, int w, int channels, WinogradTile expected)
    {
        var saved = Conv2dWinograd.TileOverride;
        try
        {
            Conv2dWinograd.TileOverride = null;
            var s = Shape(1, channels, h, w, channels);
            Assert.Equal(expected, Conv2dWinograd.TileFor(s));
            // chosen per image: a batch takes the same algorithm, so each image keeps its bits; so does one thread
            Assert.Equal(expected, Conv2dWinograd.TileFor(Shape(3, channels, h, w, channels)));
            int threads = Par.Threads;
            try
            {
                Par.Threads = 1;
                Assert.Equal(expected, Conv2dWinograd.TileFor(s));
            }
            finally { Par.Threads = threads; }
            var other = expected == WinogradTile.F6 ? WinogradTile.F4 : WinogradTile.F6;
            Conv2dWinograd.TileOverride = other;
            Assert.Equal(other, Conv2dWinograd.TileFor(s));
        }
        finally { Conv2dWinograd.TileOverride = saved; }
    }
    /// <summary>
    /// gx (given w) or gw (given x) by scattering every (output, tap) product in double: the adjoint of the reference
    /// forward loops.
    /// </summary>
    private static float[] GradientReference(Conv2dShape s, float[] gy, float[]? w, float[]? x)
    {
        var grad = new double[w != null ? (long)s.Batch * s.InC * s.H * s.W : (long)s.OutC * s.InC * 9];
        for (int b = 0; b < s.Batch; b++)
            for (int o = 0; o < s.OutC; o++)
                for (int oy = 0; oy < s.OutH; oy++)
                    for (int ox = 0; ox < s.OutW; ox++)
                    {
                        double g = gy[((b * s.OutC + o) * s.OutH + oy) * s.OutW + ox];
                        for (int c = 0; c < s.InC; c++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++)
                                {
                                    int iy = oy + ky - 1, ix = ox + kx - 1;
                                    if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                    int xi = ((b * s.InC + c) * s.H + iy) * s.W + ix, wi = ((o * s.InC + c) * 3 + ky) * 3 + kx;
                                    if (w != null) grad[xi] += g * w[wi];
                                    else grad[wi] += g * x![xi];
                                }
                    }
        return grad.Select(v => (float)v).ToArray();
    }

    private static float[] InputGradientReference(Conv2dShape s, float[] gy, float[] w) => GradientReference(s, gy, w, null);

    private static float[] WeightGradientReference(Conv2dShape s, float[] gy, float[] x) => GradientReference(s, gy, null, x);

    private static float[] InputGradientWinograd(Conv2dShape s, float[] gy, float[] w)
    {
        var gx = new float[(long)s.Batch * s.InC * s.H * s.W];
        fixed (float* pgy = gy, pw = w, pgx = gx) Conv2d.BackwardInputWinograd(s, pgy, pw, pgx);
        return gx;
    }

    [Theory]
    [MemberData(nameof(GradientShapes))]
    public void BackwardInputWinograd_Shapes_MatchesReference(int batch, int inC, int h, int w, int outC)
    {
        var s = Shape(batch, inC, h, w, outC);
        var (_, wt, _) = Data(batch, inC, h, w, outC, outC * 13 + w);
        var gy = TestUtil.RandomArray(outC * 13 + w + 3, (long)batch * outC * h * w);
        // The gradient is a conv over OutC input channels: the forward's bound with InC and OutC swapped.
        float tol = 2e-5f * MathF.Sqrt(outC * 9) + 1e-5f;
        TestUtil.AssertClose(InputGradientReference(s, gy, wt), InputGradientWinograd(s, gy, wt), tol, 0, $"gx {s}");
    }

    [Fact]
    public void BackwardInputWinograd_OneAndTwoThreads_BitwiseEqual()
    {
        var s = Shape(3, 65, 12, 10, 33);
        var (_, wt, _) = Data(3, 65, 12, 10, 33, 8);
        var gy = TestUtil.RandomArray(9, 3L * 33 * 12 * 10);
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = InputGradientWinograd(s, gy, wt);
            Par.Threads = 2;
            Assert.Equal(one, InputGradientWinograd(s, gy, wt));
        }
        finally { Par.Threads = saved; }
    }

    // Blocks grow past the 3 MB that fits V and M only where U is large next to them and the image has tiles to
    // spare: SD's VAE at 512 channels (U 37.7 MB), not the UNet's 64x64 level (256 tiles of 320 channels).
    [Theory]
    [InlineData(128, 128, 16384, 64)]   // VAE 512x512: V and M rule, as before
    [InlineData(256, 256, 4096, 128)]   // VAE 256x256: U 9.4 MB, 32 blocks of 128
    [InlineData(512, 512, 1024, 256)]   // VAE 128x128: U beyond the L3, 4 blocks of 256
    [InlineData(512, 512, 256, 64)]     // VAE 64x64: 4 blocks
    [InlineData(320, 320, 256, 32)]     // UNet 64x64: 8 blocks kept, so no growth
    [InlineData(640, 640, 64, 32)]      // UNet 32x32: two blocks of the smallest size
    public void BlockTiles_ChannelsAndTiles_GrowOnlyWhereUOutweighsTheBlock(int inC, int outC, long tiles, int expected) =>
        Assert.Equal(expected, Conv2dWinograd.BlockTiles(inC, outC, tiles));

    private static (float[] Gw, float[] Gb) WeightGradientWinograd(Conv2dShape s, float[] gy, float[] x)
    {
        var gw = new float[(long)s.OutC * s.InC * 9];
        var gb = new float[s.OutC];
        fixed (float* pgy = gy, px = x, pgw = gw, pgb = gb) Conv2d.BackwardWeightWinograd(s, pgy, px, pgw, pgb);
        return (gw, gb);
    }

    /// <summary>
    /// A tap's gradient sums Batch x H x W products of values in [-1, 1); the transforms scale rounding errors as in the
    /// forward (A by up to 8, B^T by 25), so the bound is the forward's with that sum in place of the channels'.
    /// </summary>
    private static float WeightGradientTolerance(Conv2dShape s) => 2e-5f * MathF.Sqrt((float)s.Batch * s.H * s.W) + 1e-5f;

    [Theory]
    [MemberData(nameof(GradientShapes))]
    public void BackwardWeightWinograd_Shapes_MatchesReference(int batch, int inC, int h, int w, int outC)
    {
        var s = Shape(batch, inC, h, w, outC);
        var x = TestUtil.RandomArray(inC * 7 + h, (long)batch * inC * h * w);
        var gy = TestUtil.RandomArray(outC * 11 + w, (long)batch * outC * h * w);
        var (gw, gb) = WeightGradientWinograd(s, gy, x);
        TestUtil.AssertClose(WeightGradientReference(s, gy, x), gw, WeightGradientTolerance(s), 0, $"gw {s}");
        var gbRef = Enumerable.Range(0, outC).Select(o => (float)Enumerable.Range(0, batch).Sum(b =>
            Enumerable.Range(0, h * w).Sum(p => (double)gy[(b * outC + o) * h * w + p]))).ToArray();
        TestUtil.AssertClose(gbRef, gb, 1e-5f * MathF.Sqrt(batch * h * w) + 1e-6f, 0, $"gbias {s}");
    }

    // Images in several chunks, the last one short: the chunks' sums add in order.
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void BackwardWeightWinograd_SeveralChunks_MatchesReference(int images)
    {
        var s = Shape(5, 9, 11, 13, 17);
        var x = TestUtil.RandomArray(71, (long)s.Batch * s.InC * s.H * s.W);
        var gy = TestUtil.RandomArray(72, (long)s.Batch * s.OutC * s.H * s.W);
        try
        {
            Conv2dWinogradWeightGrad.ChunkImagesOverride = images;
            TestUtil.AssertClose(WeightGradientReference(s, gy, x), WeightGradientWinograd(s, gy, x).Gw, WeightGradientTolerance(s), 0,
                $"gw in chunks of {images} images");
        }
        finally { Conv2dWinogradWeightGrad.ChunkImagesOverride = 0; }
    }

    // From 128 output channels the 36 GEMMs read the transformed output gradient in place (Gemm.ReadTransposedAInPlace).
    [Fact]
    public void BackwardWeightWinograd_ManyOutputChannels_MatchesReference()
    {
        var s = Shape(2, 20, 9, 7, 130);
        Assert.True(Gemm.ReadTransposedAInPlace(s.OutC), "this shape would not take the in-place path it is here for");
        var x = TestUtil.RandomArray(91, (long)s.Batch * s.InC * s.H * s.W);
        var gy = TestUtil.RandomArray(92, (long)s.Batch * s.OutC * s.H * s.W);
        TestUtil.AssertClose(WeightGradientReference(s, gy, x), WeightGradientWinograd(s, gy, x).Gw, WeightGradientTolerance(s), 0, $"gw {s}");
    }

    [Fact]
    public void BackwardWeightWinograd_OneAndTwoThreads_BitwiseEqual()
    {
        var s = Shape(4, 33, 12, 10, 65);
        var x = TestUtil.RandomArray(81, (long)s.Batch * s.InC * s.H * s.W);
        var gy = TestUtil.RandomArray(82, (long)s.Batch * s.OutC * s.H * s.W);
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = WeightGradientWinograd(s, gy, x);
            Par.Threads = 2;
            var two = WeightGradientWinograd(s, gy, x);
            Assert.Equal(one.Gw, two.Gw);
            Assert.Equal(one.Gb, two.Gb);
        }
        finally { Par.Threads = saved; }
    }

    [Fact]
    public void BackwardWeightWinograd_NotAWinogradConv_Throws()
    {
        Assert.Throws<ArgumentException>(() => WeightGradientWinograd(new Conv2dShape(1, 2, 6, 6, 2, 3, 3, 2, 1, 1, 1, 1), new float[18], new float[72]));
    }

    [Theory]
    [InlineData(128, 128, true)]    // the training networks' deeper levels
    [InlineData(192, 64, true)]
    [InlineData(64, 64, false)]     // the transforms cost as much as they save
    [InlineData(8, 640, false)]
    [InlineData(1280, 1280, false)] // dU would take 236 MB
    public void ShouldUseForWeightGradient_Channels_Expected(int inC, int outC, bool expected)
    {
        var saved = Conv2dWinograd.Mode;
        try
        {
            Conv2dWinograd.Mode = WinogradMode.Auto;
            Assert.Equal(expected && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, Conv2dWinograd.ShouldUseForWeightGradient(Shape(2, inC, 8, 8, outC)));
            Conv2dWinograd.Mode = WinogradMode.Never;
            Assert.False(Conv2dWinograd.ShouldUseForWeightGradient(Shape(2, inC, 8, 8, outC)));
        }
        finally { Conv2dWinograd.Mode = saved; }
    }

    [Theory]
    [InlineData(1, 320, 64, true)]    // SD's UNet at 64x64: 256 tiles
    [InlineData(32, 128, 4, true)]    // the training networks' 4x4 level: 32 one-tile images, U of 2.4 MB
    [InlineData(2, 1280, 16, false)]  // 32 tiles, but U would take 236 MB per call
    [InlineData(1, 1280, 8, false)]   // 4 tiles
    [InlineData(32, 32, 16, false)]   // too few channels to fill the GEMMs
    public void ShouldUse_Auto_DependsOnTilesAndTransformedWeights(int batch, int channels, int side, bool expected)
    {
        var saved = Conv2dWinograd.Mode;
        try
        {
            Conv2dWinograd.Mode = WinogradMode.Auto;
            Assert.Equal(expected && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated,
                Conv2dWinograd.ShouldUse(Shape(batch, channels, side, side, channels)));
        }
        finally { Conv2dWinograd.Mode = saved; }
    }

    [Fact]
    public void BackwardInputWinograd_NotAWinogradConv_Throws()
    {
        Assert.Throws<ArgumentException>(() => InputGradientWinograd(new Conv2dShape(1, 2, 6, 6, 2, 3, 3, 2, 1, 1, 1, 1), new float[18], new float[36]));
    }

    [Fact]
    public void OpsConv2d_WinogradAlways_GradientMatchesFiniteDifference()
    {
        var saved = Conv2dWinograd.Mode;
        try
        {
            Conv2dWinograd.Mode = WinogradMode.Always;
            GradCheckTests.Check(x => Ops.Conv2d(x[0], x[1], x[2], 1, 1, 1, 1, 1),
            new[] { TestUtil.Random(40, 2, 3, 7, 6), TestUtil.Random(41, 4, 3, 3, 3), TestUtil.Random(42, 4) }, "conv winograd");
        }
        finally { Conv2dWinograd.Mode = saved; }
    }
}
