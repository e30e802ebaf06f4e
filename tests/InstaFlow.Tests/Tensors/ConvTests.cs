// Conv2d kernels vs direct double-precision loops: forward (1x1, 3x3, stride 2, asymmetric padding, odd sizes,
// batch 2, every micro-kernel path, maps small enough to share GEMMs), backward input/weight/bias, and bitwise equality
// across thread counts.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public unsafe class ConvTests
{
    public static IEnumerable<object[]> Shapes()
    {
        // Batch, InC, H, W, OutC, KH, KW, Stride, pads (top, bottom, left, right)
        yield return new object[] { new Conv2dShape(1, 8, 9, 9, 5, 1, 1, 1, 0, 0, 0, 0) };
        yield return new object[] { new Conv2dShape(2, 7, 17, 33, 33, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(1, 5, 17, 17, 7, 3, 3, 2, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(2, 3, 16, 20, 17, 3, 3, 2, 0, 1, 0, 1) };
        yield return new object[] { new Conv2dShape(1, 16, 40, 70, 20, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(1, 4, 7, 65, 9, 3, 1, 1, 2, 0, 0, 0) };
        yield return new object[] { new Conv2dShape(2, 9, 6, 5, 65, 1, 1, 2, 0, 0, 0, 0) };
        // output rows narrower than a 32-column panel (small latents): one panel spans several rows
        yield return new object[] { new Conv2dShape(2, 6, 8, 8, 9, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(1, 5, 11, 13, 7, 3, 3, 1, 0, 2, 2, 0) };
        // batches whose weight gradient runs in several chunks of images (a last, shorter one), 3x3 and 1x1, stride 1 and 2
        yield return new object[] { new Conv2dShape(9, 5, 16, 16, 7, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(20, 6, 13, 11, 5, 1, 1, 1, 0, 0, 0, 0) };
        yield return new object[] { new Conv2dShape(11, 3, 18, 14, 4, 3, 3, 2, 1, 1, 1, 1) };
        // maps smaller than a panel: runs of images share a GEMM (a last, shorter run), forward, 1x1, stride 2, padding
        yield return new object[] { new Conv2dShape(7, 6, 4, 4, 9, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(5, 5, 3, 5, 7, 3, 3, 1, 0, 2, 1, 1) };
        yield return new object[] { new Conv2dShape(9, 8, 4, 4, 13, 1, 1, 1, 0, 0, 0, 0) };
        yield return new object[] { new Conv2dShape(7, 6, 8, 8, 9, 3, 3, 2, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(3, 4, 5, 3, 5, 3, 3, 2, 1, 0, 0, 1) };
        // more output channels than one GEMM tile holds: the patches are packed once for all the M tiles (one image,
        // and a run of small images)
        yield return new object[] { new Conv2dShape(1, 13, 9, 11, 300, 3, 3, 1, 1, 1, 1, 1) };
        yield return new object[] { new Conv2dShape(5, 7, 4, 4, 260, 3, 3, 1, 1, 1, 1, 1) };
    }

    private sealed class Data(Conv2dShape s, int seed)
    {
        public readonly float[] X = TestUtil.RandomArray(seed, (long)s.Batch * s.InC * s.H * s.W);
        public readonly float[] W = TestUtil.RandomArray(seed + 1, (long)s.OutC * s.InC * s.KH * s.KW);
        public readonly float[] Bias = TestUtil.RandomArray(seed + 2, s.OutC);
        public readonly float[] Gy = TestUtil.RandomArray(seed + 3, (long)s.Batch * s.OutC * s.OutH * s.OutW);
        public float Tol => 2e-6f * MathF.Sqrt(s.InC * s.KH * s.KW) + 1e-6f;

        public float[] Forward(bool fast, bool withBias)
        {
            var y = new float[(long)s.Batch * s.OutC * s.OutH * s.OutW];
            fixed (float* px = X, pw = W, pb = Bias, py = y)
            {
                if (fast) Conv2d.Forward(s, px, pw, withBias ? pb : null, py);
                else Conv2dReference.Forward(s, px, pw, withBias ? pb : null, py);
            }
            return y;
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_Shapes_MatchesReference(Conv2dShape s)
    {
        var d = new Data(s, s.InC * 31 + s.H);
        foreach (bool withBias in new[] { true, false })
            TestUtil.AssertClose(d.Forward(false, withBias), d.Forward(true, withBias), d.Tol, 0, $"{s} bias={withBias}");
    }

    // Patches packed once for every M tile against packed again in each: the same panels in the same K order, so the
    // same bits. The shapes are checked to plan several M tiles (else the test would compare a path with itself).
    [Theory]
    [InlineData(1, 13, 9, 11, 300)]
    [InlineData(1, 40, 16, 16, 520)]
    public void Forward_SeveralMTiles_PatchesPackedOnceBitwiseEqualPerTile(int batch, int inC, int h, int w, int outC)
    {
        var s = new Conv2dShape(batch, inC, h, w, outC, 3, 3, 1, 1, 1, 1, 1);
        int n = s.OutH * s.OutW, k = inC * 9;
        Assert.True(Gemm.PlannedTileM(outC, n, k) < outC, $"{s}: one M tile, so nothing is shared");
        var d = new Data(s, 5);
        var shared = new float[outC * n]; var perTile = new float[outC * n];
        var packed = new float[GemmPacking.PackedSize(outC, k, GemmKernels.MR)];
        fixed (float* px = d.X, pw = d.W, pb = d.Bias, pa = packed, py1 = shared, py2 = perTile)
        {
            GemmPacking.PackA(false, pw, k, outC, k, 1f, pa);
            Gemm.RunSharingB(outC, n, k, pa, new Conv2dPatches(s, px), 0f, pb, py1, n);
            Gemm.Run(outC, n, k, pa, new Conv2dPatches(s, px), 0f, pb, py2, n);
        }
        Assert.Equal(perTile, shared);
        TestUtil.AssertClose(d.Forward(false, true), shared, d.Tol, 0, $"{s} against the reference");
    }

    // The few-output-channel kernel (conv_out): rows narrower than, equal to and wider than a vector, a one-row image,
    // batches, 1-4 outputs, a channel count over one vector of taps, with and without bias, against the double loops.
    [Theory]
    [InlineData(1, 7, 5, 17, 3)]
    [InlineData(2, 3, 1, 1, 1)]
    [InlineData(2, 13, 9, 16, 4)]
    [InlineData(1, 300, 6, 33, 2)]
    [InlineData(3, 5, 1, 40, 4)]
    public void FewOut_Shapes_MatchesReference(int batch, int inC, int h, int w, int outC)
    {
        var s = new Conv2dShape(batch, inC, h, w, outC, 3, 3, 1, 1, 1, 1, 1);
        // without AVX-512 these shapes take the GEMM path, which the same assertions then check
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, Conv2dFewOut.Qualifies(s));
        var d = new Data(s, inC + w);
        foreach (bool bias in new[] { true, false })
            TestUtil.AssertClose(d.Forward(false, bias), d.Forward(true, bias), d.Tol, 0, $"{s} bias={bias}");
    }

    // F16 weights are widened as they are laid out; one and two threads give the same bits.
    [Fact]
    public void FewOut_F16WeightsAndThreads_MatchWidenedAndBitwiseEqual()
    {
        var s = new Conv2dShape(2, 24, 19, 21, 3, 3, 3, 1, 1, 1, 1, 1);
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, Conv2dFewOut.Qualifies(s));
        var d = new Data(s, 5);
        var half = d.W.Select(v => (Half)v).ToArray();
        var widened = half.Select(v => (float)v).ToArray();
        float[] Run(int threads, bool f16)
        {
            var y = new float[(long)s.Batch * s.OutC * s.H * s.W];
            int saved = Par.Threads;
            try
            {
                Par.Threads = threads;
                fixed (float* px = d.X, pw = widened, pb = d.Bias, py = y)
                fixed (Half* ph = half)
                    Conv2d.Forward(s, px, f16 ? new StoredData((byte*)ph, TensorDType.F16) : new StoredData((byte*)pw, TensorDType.F32), pb, py);
            }
            finally { Par.Threads = saved; }
            return y;
        }
        var one = Run(1, true);
        Assert.Equal(one, Run(2, true));
        Assert.Equal(one, Run(2, false));
    }

    // Every narrower instruction set this CPU has (scalar always) against the widest: the same bits.
    [Fact]
    public void Forward_NarrowerIsas_BitwiseEqualsWidest()
    {
        foreach (var isa in new[] { GemmIsa.Avx2, GemmIsa.Scalar }.Where(i => i < GemmKernels.Best)) NarrowerIsaBitwiseEqualsWidest(isa);
    }

    private static void NarrowerIsaBitwiseEqualsWidest(GemmIsa isa)
    {
        var s = new Conv2dShape(2, 7, 17, 33, 33, 3, 3, 1, 1, 1, 1, 1);
        var d = new Data(s, 11);
        var wide = d.Forward(true, true);
        var saved = GemmKernels.Isa;
        try
        {
            GemmKernels.Isa = isa;
            Assert.Equal(wide, d.Forward(true, true));
        }
        finally { GemmKernels.Isa = saved; }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Backward_Shapes_MatchesExplicitLoops(Conv2dShape s)
    {
        var d = new Data(s, s.OutC * 17 + s.W);
        int oh = s.OutH, ow = s.OutW;
        // Both gradients by scattering every (output, tap) product, the adjoint of the reference forward loops.
        var gxRef = new double[d.X.Length]; var gwRef = new double[d.W.Length]; var gbRef = new double[s.OutC];
        for (int b = 0; b < s.Batch; b++)
            for (int o = 0; o < s.OutC; o++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double g = d.Gy[((b * s.OutC + o) * oh + oy) * ow + ox];
                        gbRef[o] += g;
                        for (int c = 0; c < s.InC; c++)
                            for (int ky = 0; ky < s.KH; ky++)
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int iy = oy * s.Stride + ky - s.PadTop, ix = ox * s.Stride + kx - s.PadLeft;
                                    if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                    int xi = ((b * s.InC + c) * s.H + iy) * s.W + ix, wi = ((o * s.InC + c) * s.KH + ky) * s.KW + kx;
                                    gxRef[xi] += g * d.W[wi];
                                    gwRef[wi] += g * d.X[xi];
                                }
                    }
        var gx = new float[d.X.Length]; var gw = new float[d.W.Length]; var gb = new float[s.OutC];
        fixed (float* pgy = d.Gy, pw = d.W, px = d.X, pgx = gx, pgw = gw, pgb = gb)
        {
            Conv2d.BackwardInput(s, pgy, pw, pgx);
            Conv2d.BackwardWeight(s, pgy, px, pgw, pgb);
        }
        float tolW = 2e-6f * MathF.Sqrt(s.Batch * oh * ow) + 1e-6f;
        TestUtil.AssertClose(gxRef.Select(v => (float)v).ToArray(), gx, 2e-6f * MathF.Sqrt(s.OutC * s.KH * s.KW) + 1e-6f, 0, $"gx {s}");
        TestUtil.AssertClose(gwRef.Select(v => (float)v).ToArray(), gw, tolW, 0, $"gw {s}");
        TestUtil.AssertClose(gbRef.Select(v => (float)v).ToArray(), gb, tolW, 0, $"gbias {s}");
    }

    [Theory]
    [InlineData(2, 24, 30, 45, 40, 3, 1)]
    [InlineData(9, 8, 16, 16, 12, 3, 1)]
    [InlineData(6, 5, 17, 15, 9, 3, 2)]
    [InlineData(11, 7, 4, 4, 10, 3, 1)]
    [InlineData(13, 6, 8, 8, 9, 3, 2)]
    [InlineData(1, 13, 9, 11, 300, 3, 1)]
    public void ForwardBackward_OneVersusTwoThreads_BitwiseIdentical(int batch, int inC, int h, int w, int outC, int kernel, int stride)
    {
        var s = new Conv2dShape(batch, inC, h, w, outC, kernel, kernel, stride, 1, 1, 1, 1);
        var d = new Data(s, 21);
        float[][] RunAll()
        {
            var gx = new float[d.X.Length]; var gw = new float[d.W.Length]; var gb = new float[s.OutC];
            fixed (float* pgy = d.Gy, pw = d.W, px = d.X, pgx = gx, pgw = gw, pgb = gb)
            {
                Conv2d.BackwardInput(s, pgy, pw, pgx);
                Conv2d.BackwardWeight(s, pgy, px, pgw, pgb);
            }
            return new[] { d.Forward(true, true), gx, gw, gb };
        }
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = RunAll();
            Par.Threads = 2;
            var two = RunAll();
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
        }
        finally { Par.Threads = saved; }
    }
}
