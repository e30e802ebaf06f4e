// Weights packed once (WeightPacking): Linear, direct conv and Winograd give bit-identical results to packing on
// every call, for F32/F16/BF16 weights on odd shapes; writes, replacement, training steps and LoRA merges never
// leave a stale pack in use.
using InstaFlow.Models.Lora;
using InstaFlow.Nn;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public unsafe class WeightPackTests
{
    private static Tensor Weight(int seed, TensorDType dtype, params int[] shape)
    {
        if (dtype != TensorDType.F32) return StoredPrecisionTests.HalfRandom(seed, dtype, shape);
        var t = Tensor.EmptyPersistent(shape);
        TestUtil.RandomArray(seed, t.Numel).CopyTo(t.Span);
        return t;
    }

    private static void AssertBitwiseEqual(float[] expected, Tensor actual, string what)
    {
        var b = actual.ToArray();
        Assert.Equal(expected.Length, b.Length);
        int bad = 0; float max = 0;
        for (int i = 0; i < b.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(b[i])) { bad++; max = MathF.Max(max, MathF.Abs(expected[i] - b[i])); }
        Assert.True(bad == 0, $"{what}: {bad} of {b.Length} values differ from packing on every call, max abs diff {max}");
    }

    public static IEnumerable<object[]> LinearShapes()
    {
        // rows, in, out: K past one 256-wide block (300, 600), N not a multiple of the 32-wide panel, rows not of 6.
        foreach (var dtype in new[] { TensorDType.F32, TensorDType.F16, TensorDType.BF16 })
        {
            yield return new object[] { dtype, 16, 17, 65 };
            yield return new object[] { dtype, 77, 600, 33 };
            yield return new object[] { dtype, 23, 300, 100 };
        }
    }

    [Theory]
    [MemberData(nameof(LinearShapes))]
    public void Linear_PackedOnce_BitwiseEqualsPackingEveryCall(TensorDType dtype, int rows, int inF, int outF)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var w = Weight(rows * 7 + inF, dtype, outF, inF);
        var x = TestUtil.Random(inF, rows, inF);
        var b = TestUtil.Random(outF + 1, outF);
        var expected = Ops.Linear(x, w, b).ToArray();
        Assert.Equal(0, w.PackedBytes);
        w.PackMaxRows = rows;
        AssertBitwiseEqual(expected, Ops.Linear(x, w, b), $"{dtype} [{rows},{inF}] x [{outF},{inF}]^T, packing");
        Assert.True(w.PackedBytes >= (long)outF * inF * 4, $"the pack holds {w.PackedBytes} bytes for {outF}x{inF} weights");
        AssertBitwiseEqual(expected, Ops.Linear(x, w, b), $"{dtype} [{rows},{inF}] x [{outF},{inF}]^T, with the pack");
        // A call of more rows than the limit packs as before and leaves the pack alone.
        var x2 = TestUtil.Random(inF + 1, rows + 1, inF);
        w.PackMaxRows = 0;
        var expected2 = Ops.Linear(x2, w, b).ToArray();
        w.PackMaxRows = rows;
        long bytes = w.PackedBytes;
        AssertBitwiseEqual(expected2, Ops.Linear(x2, w, b), $"{dtype} [{rows + 1},{inF}], over the row limit");
        Assert.Equal(bytes, w.PackedBytes);
    }

    public static IEnumerable<object[]> ConvShapes()
    {
        // dtype, batch, inC, h, w, outC, kernel, stride, padding, Winograd mode
        foreach (var dtype in new[] { TensorDType.F32, TensorDType.F16, TensorDType.BF16 })
        {
            yield return new object[] { dtype, 2, 7, 9, 7, 13, 3, 2, 1, WinogradMode.Never };
            yield return new object[] { dtype, 1, 33, 6, 5, 7, 1, 1, 0, WinogradMode.Never };
            yield return new object[] { dtype, 1, 300, 5, 4, 9, 3, 1, 1, WinogradMode.Never };
            yield return new object[] { dtype, 2, 70, 9, 11, 65, 3, 1, 1, WinogradMode.Always };
            yield return new object[] { dtype, 1, 300, 5, 4, 9, 3, 1, 1, WinogradMode.Always };
        }
    }

    [Theory]
    [MemberData(nameof(ConvShapes))]
    public void Conv2d_PackedOnce_BitwiseEqualsPackingEveryCall(TensorDType dtype, int batch, int inC, int h, int wd, int outC, int k,
        int stride, int pad, WinogradMode mode)
    {
        var saved = Conv2dWinograd.Mode;
        try
        {
            Conv2dWinograd.Mode = mode;
            using var scope = TensorScope.Begin();
            using var ng = GradMode.NoGrad();
            using var w = Weight(inC * 13 + outC, dtype, outC, inC, k, k);
            var x = TestUtil.Random(batch * 3 + h, batch, inC, h, wd);
            var b = TestUtil.Random(outC, outC);
            var expected = Ops.Conv2d(x, w, b, stride, pad).ToArray();
            w.PackMaxRows = int.MaxValue;
            string what = $"{dtype} conv {inC}->{outC} k{k} s{stride} p{pad} on [{batch},{inC},{h},{wd}], Winograd {mode}";
            AssertBitwiseEqual(expected, Ops.Conv2d(x, w, b, stride, pad), what + ", packing");
            Assert.True(w.PackedBytes > 0, $"{what}: no pack was kept");
            AssertBitwiseEqual(expected, Ops.Conv2d(x, w, b, stride, pad), what + ", with the pack");
        }
        finally { Conv2dWinograd.Mode = saved; }
    }

    [Fact]
    public void Conv2d_SameWeightDirectAndWinograd_KeepsOnePackOfEachLayout()
    {
        var saved = Conv2dWinograd.Mode;
        try
        {
            using var scope = TensorScope.Begin();
            using var ng = GradMode.NoGrad();
            using var w = Weight(5, TensorDType.F16, 64, 64, 3, 3);
            var x = TestUtil.Random(6, 1, 64, 12, 12);
            Conv2dWinograd.Mode = WinogradMode.Never;
            var direct = Ops.Conv2d(x, w, null, 1, 1).ToArray();
            Conv2dWinograd.Mode = WinogradMode.Always;
            Conv2dWinograd.TileOverride = WinogradTile.F4;
            var wino = Ops.Conv2d(x, w, null, 1, 1).ToArray();
            Conv2dWinograd.TileOverride = WinogradTile.F6;
            var wino6 = Ops.Conv2d(x, w, null, 1, 1).ToArray();
            w.PackMaxRows = int.MaxValue;
            for (int round = 0; round < 2; round++)
            {
                Conv2dWinograd.Mode = WinogradMode.Never;
                AssertBitwiseEqual(direct, Ops.Conv2d(x, w, null, 1, 1), $"direct, round {round}");
                Conv2dWinograd.Mode = WinogradMode.Always;
                Conv2dWinograd.TileOverride = WinogradTile.F4;
                AssertBitwiseEqual(wino, Ops.Conv2d(x, w, null, 1, 1), $"Winograd F(4x4), round {round}");
                Conv2dWinograd.TileOverride = WinogradTile.F6;
                AssertBitwiseEqual(wino6, Ops.Conv2d(x, w, null, 1, 1), $"Winograd F(6x6), round {round}");
            }
            Assert.NotNull(w.FindPack(WeightPackKind.ConvA));
            Assert.NotNull(w.FindPack(WeightPackKind.WinogradU));
            Assert.NotNull(w.FindPack(WeightPackKind.WinogradU6));
        }
        finally { Conv2dWinograd.Mode = saved; Conv2dWinograd.TileOverride = null; }
    }

    [Fact]
    public void Linear_WeightWrittenThroughData_PacksTheNewValues()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var w = Weight(3, TensorDType.F32, 40, 50);
        var x = TestUtil.Random(4, 20, 50);
        w.PackMaxRows = 1024;
        Ops.Linear(x, w, null);
        Assert.True(w.PackedBytes > 0);
        Blas.Scale(-0.5f, w.Data, w.Numel);
        Assert.Equal(0, w.PackedBytes);
        w.PackMaxRows = 0;
        var expected = Ops.Linear(x, w, null).ToArray();
        w.PackMaxRows = 1024;
        AssertBitwiseEqual(expected, Ops.Linear(x, w, null), "after writing the weight");
        // The same through Span and CopyFrom, with a pack made from the new values in between.
        Assert.True(w.PackedBytes > 0);
        w.Span[7] = 3f;
        Assert.Equal(0, w.PackedBytes);
        Ops.Linear(x, w, null);
        using var other = Weight(8, TensorDType.F32, 40, 50);
        w.CopyFrom(other);
        Assert.Equal(0, w.PackedBytes);
        AssertBitwiseEqual(Ops.Linear(x, other, null).ToArray(), Ops.Linear(x, w, null), "after CopyFrom");
    }

    [Fact]
    public void Linear_ParameterReplaced_UsesTheNewWeightAndFreesTheOldPack()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var layer = new Linear(50, 40);
        layer.InitDefault(3);
        WeightPacking.Enable(layer);
        var x = TestUtil.Random(4, 20, 50);
        layer.Forward(x);
        var old = layer.Weight.Value;
        Assert.True(old.PackedBytes > 0);
        var fresh = Weight(9, TensorDType.F16, 40, 50);
        var expected = Ops.Linear(x, fresh, layer.Bias!.Value).ToArray();
        layer.Weight.Replace(fresh);
        Assert.Equal(0, old.PackedBytes);
        AssertBitwiseEqual(expected, layer.Forward(x), "after Replace");
        Assert.True(fresh.PackedBytes > 0, "the replacement is packed once too");
        WeightPacking.Disable(layer);
        Assert.Equal(0, WeightPacking.PackedBytes(layer));
    }

    /// <summary>
    /// Steps of AdamW on a two-layer MLP whose weights are marked for packing, with an inference call (which packs)
    /// between the steps: losses, weights and the inference outputs equal those of an unmarked copy bit for bit.
    /// </summary>
    [Fact]
    public void Training_MarkedWeights_NeverUseAStalePack()
    {
        var (a1, a2) = Mlp(); var (b1, b2) = Mlp();
        WeightPacking.Enable(b1); WeightPacking.Enable(b2);
        var optA = new AdamW(a1.Parameters().Concat(a2.Parameters()), lr: 0.05f);
        var optB = new AdamW(b1.Parameters().Concat(b2.Parameters()), lr: 0.05f);
        var x = TestUtil.Random(11, 24, 20);
        var target = TestUtil.Random(12, 24, 18);
        for (int step = 0; step < 4; step++)
        {
            float la = Step(a1, a2, optA, x, target), lb = Step(b1, b2, optB, x, target);
            Assert.True(BitConverter.SingleToInt32Bits(la) == BitConverter.SingleToInt32Bits(lb), $"step {step}: loss {lb} with packing marks, {la} without (diff {MathF.Abs(la - lb)})");
            Assert.Equal(0, WeightPacking.PackedBytes(b1) + WeightPacking.PackedBytes(b2));
            using var scope = TensorScope.Begin();
            using var ng = GradMode.NoGrad();
            var expected = a2.Forward(Ops.Relu(a1.Forward(x))).ToArray();
            AssertBitwiseEqual(expected, b2.Forward(Ops.Relu(b1.Forward(x))), $"inference after step {step}");
            Assert.True(WeightPacking.PackedBytes(b1) > 0, "the inference call keeps packs");
        }
        foreach (var (pa, pb) in a1.Parameters().Concat(a2.Parameters()).Zip(b1.Parameters().Concat(b2.Parameters())))
            AssertBitwiseEqual(pa.Value.ToArray(), pb.Value, "weights after training");
    }

    private static (Linear, Linear) Mlp()
    {
        var l1 = new Linear(20, 30); var l2 = new Linear(30, 18);
        l1.InitDefault(1); l2.InitDefault(2);
        return (l1, l2);
    }

    private static float Step(Linear l1, Linear l2, AdamW opt, Tensor x, Tensor target)
    {
        using var scope = TensorScope.Begin();
        l1.ZeroGrad(); l2.ZeroGrad();
        var y = l2.Forward(Ops.Relu(l1.Forward(x)));
        var loss = Ops.MeanAll(Ops.Square(Ops.Sub(y, target)));
        loss.Backward();
        opt.Step();
        return loss.Item();
    }

    [Fact]
    public void Pipeline_PackWeightsOnce_SameImagesAndLatents()
    {
        var dir = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
        var req = new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 3, Steps = 2, Guidance = 2f };
        using var plain = SdComponents.Load(dir);
        var expected = new RectifiedFlowPipeline(plain).GenerateImages(req, 2);
        using var packed = SdComponents.Load(dir);
        packed.PackWeightsOnce(int.MaxValue);
        var actual = new RectifiedFlowPipeline(packed).GenerateImages(req, 2);
        Assert.True(packed.PackedWeightBytes > 0, "the run kept no packs");
        AssertBitwiseEqual(expected.FinalLatents.ToArray(), actual.FinalLatents, "final latents of 2 images, 2 guided steps");
        for (int i = 0; i < 2; i++) Assert.Equal(expected.ImagesHwc[i], actual.ImagesHwc[i]);
        expected.FinalLatents.Dispose(); actual.FinalLatents.Dispose();
    }

    private static string LoraFile => Path.Combine(TestUtil.Fixtures, "lora", "kohya_lora.safetensors");

    private static float[] UnetOut(SdComponents m)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var sample = TestUtil.Random(21, 1, m.Unet.Config.InChannels, 16, 16);
        var ctx = TestUtil.Random(22, 1, 77, m.TextEncoder.Config.HiddenSize);
        return m.Unet.Forward(sample, [500f], ctx).ToArray();
    }

    private static float[] TextOut(SdComponents m)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        return m.TextEncoder.Forward(Enumerable.Range(0, 77).Select(i => i % 50).ToArray(), 1).LastHiddenState.ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LoraMerge_AfterPacking_UsesTheMergedWeights(bool throughAdditions)
    {
        var dir = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
        float[] unetExpected, textExpected;
        using (var plain = SdComponents.Load(dir))
        {
            new ModelAdditions { LoraFiles = [LoraFile], LoraScale = 0.7f }.ApplyTo(plain);
            unetExpected = UnetOut(plain);
            textExpected = TextOut(plain);
        }
        using var m = SdComponents.Load(dir);
        Assert.True(m.PackWeightsOnce(int.MaxValue) > 0);
        var before = UnetOut(m);
        TextOut(m);
        Assert.True(m.PackedWeightBytes > 0, "the calls before the merge keep packs");
        Assert.NotEqual(unetExpected, before);
        if (throughAdditions) new ModelAdditions { LoraFiles = [LoraFile], LoraScale = 0.7f }.ApplyTo(m);
        else Lora.Merge(Lora.Read(LoraFile, m.TextEncoder, m.Unet), m.TextEncoder, m.Unet, 0.7f, 0.7f);
        using var scope = TensorScope.Begin();
        AssertBitwiseEqual(unetExpected, Tensor.FromArray(UnetOut(m), unetExpected.Length), "UNet after the LoRA merge");
        AssertBitwiseEqual(textExpected, Tensor.FromArray(TextOut(m), textExpected.Length), "text encoder after the LoRA merge");
        Assert.True(m.PackedWeightBytes > 0, "the merged weights are packed again");
    }
}
