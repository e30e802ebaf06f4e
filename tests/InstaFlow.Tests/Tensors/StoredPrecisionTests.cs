// Weights kept in F16/BF16: the packing kernels widen them exactly, so Linear and Conv2d (direct and Winograd) give
// bit-identical results to the widened F32 weights; loading, saving, checks and the inference-only guard.
using InstaFlow.IO;
using InstaFlow.Models.Unet;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public unsafe class StoredPrecisionTests
{
    /// <summary>Random weights rounded to dtype, held in that dtype.</summary>
    internal static Tensor HalfRandom(int seed, TensorDType dtype, params int[] shape)
    {
        var v = TestUtil.RandomArray(seed, ShapeUtil.Numel(shape));
        var t = Tensor.EmptyHalfPersistent(dtype, shape);
        fixed (float* p = v)
        {
            if (dtype == TensorDType.F16) HalfConvert.F32ToF16(p, t.HalfData, v.Length);
            else HalfConvert.F32ToBF16(p, t.HalfData, v.Length);
        }
        return t;
    }

    private static void AssertBitwiseEqual(Tensor expected, Tensor actual, string what)
    {
        var a = expected.ToArray(); var b = actual.ToArray();
        Assert.Equal(a.Length, b.Length);
        int bad = 0; float max = 0;
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i])) { bad++; max = MathF.Max(max, MathF.Abs(a[i] - b[i])); }
        Assert.True(bad == 0, $"{what}: {bad} of {a.Length} values differ from the widened-weight result, max abs diff {max}");
    }

    public static IEnumerable<object[]> LinearShapes()
    {
        // rows, in, out: rows < 16 and out < 16 take the small-GEMM path, the rest the packed one (K over one block).
        foreach (var dtype in new[] { TensorDType.F16, TensorDType.BF16 })
        {
            yield return new object[] { dtype, 1, 7, 3 };
            yield return new object[] { dtype, 5, 300, 40 };
            yield return new object[] { dtype, 16, 17, 65 };
            yield return new object[] { dtype, 77, 600, 33 };
            yield return new object[] { dtype, 40, 64, 15 };
        }
    }

    [Theory]
    [MemberData(nameof(LinearShapes))]
    public void Linear_ReducedPrecisionWeight_BitwiseEqualsWidenedWeight(TensorDType dtype, int rows, int inF, int outF)
    {
        using var scope = TensorScope.Begin();
        using var w = HalfRandom(rows * 7 + inF, dtype, outF, inF);
        using var wide = w.ToFloat32();
        var x = TestUtil.Random(inF, rows, inF);
        var b = TestUtil.Random(outF + 1, outF);
        AssertBitwiseEqual(Ops.Linear(x, wide, b), Ops.Linear(x, w, b), $"{dtype} [{rows},{inF}] x [{outF},{inF}]^T with bias");
        AssertBitwiseEqual(Ops.Linear(x, wide, null), Ops.Linear(x, w, null), $"{dtype} [{rows},{inF}] x [{outF},{inF}]^T");
    }

    public static IEnumerable<object[]> ConvShapes()
    {
        // batch, inC, h, w, outC, kernel, stride, padding; 3x3/s1/p1 with 64+ channels and 64+ tiles takes Winograd
        // where the CPU has AVX-512 (the test below forces that path too).
        yield return new object[] { 1, 3, 9, 7, 5, 3, 1, 1 };
        yield return new object[] { 2, 7, 8, 8, 13, 3, 2, 1 };
        yield return new object[] { 1, 33, 6, 5, 7, 1, 1, 0 };
        yield return new object[] { 1, 300, 5, 4, 9, 3, 1, 1 };
        yield return new object[] { 1, 64, 32, 32, 64, 3, 1, 1 };
    }

    [Theory]
    [MemberData(nameof(ConvShapes))]
    public void Conv2d_F16Weight_BitwiseEqualsWidenedWeight(int batch, int inC, int h, int wd, int outC, int k, int stride, int pad)
    {
        using var scope = TensorScope.Begin();
        using var w = HalfRandom(inC * 13 + outC, TensorDType.F16, outC, inC, k, k);
        using var wide = w.ToFloat32();
        var x = TestUtil.Random(h * wd, batch, inC, h, wd);
        var b = TestUtil.Random(3, outC);
        AssertBitwiseEqual(Ops.Conv2d(x, wide, b, stride, pad), Ops.Conv2d(x, w, b, stride, pad), $"conv {inC}->{outC} {k}x{k}/s{stride} on {h}x{wd}");
    }

    [Theory]
    [InlineData(TensorDType.F16, 2, 7, 5, 6, 9)]
    [InlineData(TensorDType.BF16, 1, 300, 10, 11, 7)]
    [InlineData(TensorDType.F16, 1, 64, 16, 16, 70)]
    public void Winograd_ReducedPrecisionWeight_BitwiseEqualsWidenedWeight(TensorDType dtype, int batch, int inC, int h, int wd, int outC)
    {
        var s = new Conv2dShape(batch, inC, h, wd, outC, 3, 3, 1, 1, 1, 1, 1);
        using var w = HalfRandom(inC + h, dtype, outC, inC, 3, 3);
        using var wide = w.ToFloat32();
        var x = TestUtil.RandomArray(5, (long)batch * inC * h * wd);
        var bias = TestUtil.RandomArray(6, outC);
        foreach (var tile in new[] { WinogradTile.F4, WinogradTile.F6 })
        {
            var y1 = new float[(long)batch * outC * h * wd];
            var y2 = new float[y1.Length];
            fixed (float* px = x, pb = bias, p1 = y1, p2 = y2)
            {
                Conv2dWinograd.Forward(s, px, new StoredData((byte*)wide.Data, TensorDType.F32), pb, p1, tile);
                Conv2dWinograd.Forward(s, px, w.Stored, pb, p2, tile);
            }
            int bad = y1.Zip(y2).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
            Assert.True(bad == 0, $"{tile}: {bad} of {y1.Length} outputs differ, max abs diff {TestUtil.MaxAbsDiff(y1, y2)}");
        }
    }

    [Fact]
    public void Linear_F16WeightWhileRecording_ThrowsNamingTheWeight()
    {
        using var scope = TensorScope.Begin();
        using var w = HalfRandom(1, TensorDType.F16, 8, 4);
        w.Name = "proj.weight";
        var x = TestUtil.Random(2, 3, 4);
        x.RequiresGrad = true;
        var e = Assert.Throws<InvalidOperationException>(() => Ops.Linear(x, w, null));
        Assert.Contains("proj.weight", e.Message);
        Assert.Contains("WeightPrecision.Float32", e.Message);
    }

    [Fact]
    public void Data_OfF16Tensor_ThrowsInsteadOfReadingHalves()
    {
        using var w = HalfRandom(1, TensorDType.F16, 4, 4);
        var e = Assert.Throws<InvalidOperationException>(() => w.Span.ToArray());
        Assert.Contains("F16", e.Message);
    }

    private static string TinyUnet => Path.Combine(TestUtil.Fixtures, "tiny-sd15", "unet");

    private static UNet2DConditionModel LoadTinyUnet(string file, WeightPrecision precision)
    {
        var m = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(TinyUnet, "config.json")));
        StateDictLoader.Load(m, Path.Combine(TinyUnet, file), precision: precision);
        return m;
    }

    [Fact]
    public void Load_StoredPrecisionFromF16File_KeepsOnlyLinearAndConvWeightsHalf()
    {
        var m = LoadTinyUnet("diffusion_pytorch_model.fp16.safetensors", WeightPrecision.Stored);
        var byName = m.NamedParameters().ToDictionary(p => p.Name, p => p.Param.Value);
        Assert.Equal(TensorDType.F16, byName["conv_in.weight"].DType);
        Assert.Equal(TensorDType.F16, byName["time_embedding.linear_1.weight"].DType);
        Assert.Equal(TensorDType.F32, byName["conv_in.bias"].DType);
        Assert.Equal(TensorDType.F32, byName["conv_norm_out.weight"].DType);
        Assert.All(byName.Values.Where(t => t.DType != TensorDType.F32), t => Assert.False(t.RequiresGrad));
        long halfBytes = byName.Values.Where(t => t.DType == TensorDType.F16).Sum(t => t.Numel);
        Assert.True(halfBytes > 0.9 * m.ParameterCount, $"only {halfBytes} of {m.ParameterCount} parameters stayed F16");

        var widened = LoadTinyUnet("diffusion_pytorch_model.fp16.safetensors", WeightPrecision.Float32);
        Assert.All(widened.Parameters(), p => Assert.Equal(TensorDType.F32, p.Value.DType));
        var e = Assert.Throws<InvalidOperationException>(() => m.SetRequiresGrad(true));
        Assert.Contains("WeightPrecision.Float32", e.Message);
    }

    [Fact]
    public void UnetForward_StoredF16Weights_BitwiseEqualsWidenedWeights()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var half = LoadTinyUnet("diffusion_pytorch_model.fp16.safetensors", WeightPrecision.Stored);
        var wide = LoadTinyUnet("diffusion_pytorch_model.fp16.safetensors", WeightPrecision.Float32);
        var c = half.Config;
        var sample = TestUtil.Random(11, 2, c.InChannels, c.SampleSize, c.SampleSize);
        var ctx = TestUtil.Random(12, 2, 77, c.CrossAttentionDim);
        AssertBitwiseEqual(wide.Forward(sample, [500f, 20f], ctx), half.Forward(sample, [500f, 20f], ctx), "tiny UNet");
    }

    [Theory]
    [InlineData(TensorDType.F16, SafeTensorDType.F16)]
    [InlineData(TensorDType.BF16, SafeTensorDType.BF16)]
    [InlineData(TensorDType.F16, SafeTensorDType.F32)]
    [InlineData(TensorDType.BF16, SafeTensorDType.F16)]
    public void Save_ReducedPrecisionTensor_RoundTripsThroughTheFile(TensorDType held, SafeTensorDType written)
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-stored-").FullName;
        try
        {
            using var t = HalfRandom(3, held, 5, 7);
            var path = Path.Combine(dir, "w.safetensors");
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = t }, written);
            using var f = SafeTensors.Open(path);
            using var back = f.ReadF32("w");
            var expect = t.ToArray();
            if (written == SafeTensorDType.F16 && held == TensorDType.BF16)
            {
                // BF16 -> F16 rounds: compare with rounding the widened values directly.
                var h = new ushort[expect.Length];
                HalfConvert.F32ToF16(expect, h);
                HalfConvert.F16ToF32(h, expect);
            }
            TestUtil.AssertClose(expect, back.Span, 0, 0, $"{held} saved as {written}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(TensorDType.F16, (ushort)0x7E00, (ushort)0x3C00)]
    [InlineData(TensorDType.BF16, (ushort)0x7FC0, (ushort)0x3F80)]
    public void WeightCheck_HalfTensor_CountsNaNAndInf(TensorDType dtype, ushort nan, ushort one)
    {
        using var t = Tensor.EmptyHalfPersistent(dtype, 4);
        var h = new Span<ushort>(t.HalfData, 4);
        h.Fill(nan);
        Assert.True(WeightCheck.AllNonFinite(t));
        h[2] = one;
        Assert.False(WeightCheck.AllNonFinite(t));
        Assert.Equal(3, WeightCheck.CountNonFinite(t));
    }
}

/// <summary>WeightLastUse: a file-mapped weight's pages are dropped after its final read, and only inside the scope.</summary>
public unsafe class WeightLastUseTests
{
    // A weight of 64 x 1024 floats (256 KiB, 64 whole pages) in a safetensors file, mapped zero-copy.
    private static (string Dir, SafeTensorsFile File, Tensor Weight) MappedWeight()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-lastuse-").FullName;
        var path = Path.Combine(dir, "w.safetensors");
        using (var w = TestUtil.Random(7, 64, 1024)) SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w });
        var f = SafeTensors.Open(path);
        var t = f.ReadF32("w");
        Assert.True(t.IsFileMapped, "the F32 weight should be a zero-copy view of the mapping");
        return (dir, f, t);
    }

    [Fact]
    public void Linear_InsideLastUse_DropsTheWeightsPagesAfterUse()
    {
        Assert.True(OperatingSystem.IsLinux(), "WeightLastUse drops pages on Linux only; this test checks that path");
        var (dir, f, w) = MappedWeight();
        try
        {
            using var scope = TensorScope.Begin();
            var x = TestUtil.Random(8, 20, 1024);
            var expected = Ops.Linear(x, w, null).ToArray();
            float original = w.Span[5000];
            // A copy-on-write change stands in for "pages this process owns": dropping them shows the file's value again.
            w.Span[5000] = 1234f;
            var changed = Ops.Linear(x, w, null).ToArray();
            Assert.Equal(1234f, w.Span[5000]);
            Assert.NotEqual(expected, changed);
            float[] last;
            using (WeightLastUse.Begin()) last = Ops.Linear(x, w, null).ToArray();
            Assert.Equal(changed, last);
            Assert.Equal(original, w.Span[5000]);
        }
        finally { w.Dispose(); f.Dispose(); Directory.Delete(dir, true); }
    }

    [Fact]
    public void Linear_OutsideLastUse_KeepsTheWeightsPages()
    {
        var (dir, f, w) = MappedWeight();
        try
        {
            using var scope = TensorScope.Begin();
            w.Span[5000] = 1234f;
            Ops.Linear(TestUtil.Random(8, 20, 1024), w, null);
            Assert.Equal(1234f, w.Span[5000]);
        }
        finally { w.Dispose(); f.Dispose(); Directory.Delete(dir, true); }
    }
}
