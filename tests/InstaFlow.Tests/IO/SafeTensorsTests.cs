// safetensors reader/writer: round trips in F32/F16/BF16, every fixture file, zero-copy lifetime, and one clear
// InvalidDataException (naming the file and the problem) for each kind of corrupt file.
using System.Text;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.IO;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string TempPath(string name) => Path.Combine(_dir, name);

    [Theory]
    [InlineData(SafeTensorDType.F32)]
    [InlineData(SafeTensorDType.F16)]
    [InlineData(SafeTensorDType.BF16)]
    public void Save_ThenOpen_RoundTripsValuesShapesAndMetadata(SafeTensorDType dtype)
    {
        using var scope = TensorScope.Begin();
        var tensors = new Dictionary<string, Tensor>
        {
            ["b.weight"] = TestUtil.Random(1, 3, 5, 7),
            ["a.bias"] = TestUtil.Random(2, 17),
            ["empty"] = Tensor.Empty(0, 4),
            ["scalarish"] = TestUtil.Random(3, 1),
        };
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "seed=42 \"quoted\"" };
        string path = TempPath("rt.safetensors");
        SafeTensors.Save(path, tensors, dtype, meta);
        Assert.False(File.Exists(path + ".tmp"));

        using var f = SafeTensors.Open(path);
        Assert.Equal(meta, f.Metadata);
        Assert.Equal(tensors.Keys.Order(StringComparer.Ordinal), f.Names.Order(StringComparer.Ordinal));
        long headerLen = BitConverter.ToInt64(File.ReadAllBytes(path), 0);
        Assert.Equal(0, headerLen % 8);
        foreach (var (name, t) in tensors)
        {
            var info = f.Info(name);
            Assert.Equal(dtype, info.DType);
            Assert.Equal(t.ShapeArray(), info.Shape);
            using var back = f.ReadF32(name);
            var expected = t.ToArray().Select(v => Quantize(v, dtype)).ToArray();
            TestUtil.AssertClose(expected, back.Span, 0f, what: $"{name} as {dtype}");
        }
    }

    private static float Quantize(float v, SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F16 => (float)(Half)v,
        SafeTensorDType.BF16 => HalfConvert.BF16ToF32Scalar(HalfConvert.F32ToBF16Scalar(v)),
        _ => v,
    };

    [Fact]
    public void Save_OverExistingFile_ReplacesIt()
    {
        string path = TempPath("over.safetensors");
        using var scope = TensorScope.Begin();
        SafeTensors.Save(path, new[] { ("x", TestUtil.Random(1, 4)) });
        SafeTensors.Save(path, new[] { ("y", TestUtil.Random(2, 2, 2)) });
        using var f = SafeTensors.Open(path);
        Assert.Equal(new[] { "y" }, f.Names);
    }

    [Fact]
    public void Save_DuplicateNames_Throws()
    {
        using var scope = TensorScope.Begin();
        var t = TestUtil.Random(1, 2);
        var ex = Assert.Throws<ArgumentException>(() => SafeTensors.Save(TempPath("dup.safetensors"), new[] { ("x", t), ("x", t) }));
        Assert.Contains("duplicate", ex.Message);
    }

    [Fact]
    public void ReadF32_F32Tensor_IsZeroCopyAndOutlivesTheReader()
    {
        string path = TempPath("zc.safetensors");
        using (TensorScope.Begin()) SafeTensors.Save(path, new[] { ("w", TestUtil.Random(5, 8, 8)) });
        Tensor w;
        using (var f = SafeTensors.Open(path))
        {
            w = f.ReadF32("w");
            var raw = f.RawBytes("w");
            unsafe { fixed (byte* p = raw) Assert.True(p == (byte*)w.Data, "F32 tensor should point into the mapping"); }
        }
        TestUtil.AssertClose(TestUtil.RandomArray(5, 64), w.Span, 0f, what: "after reader disposed");
        w.Dispose();
    }

    public static IEnumerable<object[]> FixtureFiles() =>
        Directory.GetFiles(Path.Combine(TestUtil.Fixtures, "io"), "*.safetensors").Order().Select(p => new object[] { Path.GetFileName(p) });

    [Theory]
    [MemberData(nameof(FixtureFiles))]
    public void Open_IoFixture_ReadsEveryTensor(string file)
    {
        using var f = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "io", file));
        Assert.NotEmpty(f.Tensors);
        foreach (var info in f.Tensors)
        {
            if (info.DType == SafeTensorDType.I64) Assert.Equal(info.Numel, f.ReadI64(info.Name).Length);
            else
            {
                using var t = f.ReadF32(info.Name);
                Assert.Equal(info.Shape, t.ShapeArray());
                foreach (var v in t.Span) Assert.True(float.IsFinite(v), $"{file}:{info.Name} has a non-finite value {v}");
            }
        }
    }

    [Fact]
    public void Open_KnownFixtures_HaveExpectedShapesAndTypes()
    {
        using (var f = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "io", "vae_decode_nonsquare.safetensors")))
        {
            Assert.Equal(new[] { 1, 3, 16, 32 }, f.Info("image").Shape);
            Assert.Equal(new[] { 1, 4, 8, 16 }, f.Info("latents").Shape);
        }
        using (var f = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "rng", "randn.safetensors")))
            Assert.Equal("1.13.0a0", f.Metadata["torch"]);
        using (var f = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "e2e_seeded", "case0.safetensors")))
        {
            Assert.Equal(SafeTensorDType.U8, f.Info("image_u8_hwc").DType);
            Assert.Equal(16 * 16 * 3, f.ReadU8("image_u8_hwc").Length);
        }
    }

    [Fact]
    public void ReadF32_Fp16Unet_EqualsF32WeightsRoundedToHalf()
    {
        string dir = Path.Combine(TestUtil.Fixtures, "tiny-sd15", "unet");
        using var f16 = SafeTensors.Open(Path.Combine(dir, "diffusion_pytorch_model.fp16.safetensors"));
        using var f32 = SafeTensors.Open(Path.Combine(dir, "diffusion_pytorch_model.safetensors"));
        Assert.Equal(f32.Names.Order(StringComparer.Ordinal), f16.Names.Order(StringComparer.Ordinal));
        foreach (var info in f16.Tensors)
        {
            Assert.Equal(SafeTensorDType.F16, info.DType);
            using var half = f16.ReadF32(info.Name);
            using var full = f32.ReadF32(info.Name);
            var rounded = full.ToArray().Select(v => HalfConvert.F16ToF32Scalar(HalfConvert.F32ToF16Scalar(v))).ToArray();
            TestUtil.AssertClose(rounded, half.Span, 0f, what: info.Name);
        }
    }

    // ---- corrupt files: each must give one InvalidDataException naming the file and the problem ----

    private static byte[] Build(string header, int dataBytes, ulong? lengthOverride = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + h.Length + dataBytes];
        BitConverter.TryWriteBytes(b, lengthOverride ?? (ulong)h.Length);
        h.CopyTo(b, 8);
        return b;
    }

    public static IEnumerable<object[]> CorruptCases()
    {
        const string ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        yield return new object[] { "short", new byte[] { 1, 2, 3 }, "too short" };
        yield return new object[] { "hugeheader", Build(ok, 8, 1UL << 40), "absurd" };
        yield return new object[] { "pastend", Build(ok, 8, 5000), "past the end" };
        yield return new object[] { "badjson", Build("{\"x\":{\"dtype\":", 8), "invalid JSON" };
        yield return new object[] { "notobject", Build("[1,2]", 0), "does not start with" };
        yield return new object[] { "dtype", Build("{\"x\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "unknown dtype \"F8\"" };
        yield return new object[] { "outside", Build(ok, 4), "outside" };
        yield return new object[] { "overlap", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "overlap" };
        yield return new object[] { "length", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12" };
        yield return new object[] { "negdim", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "negative dimension" };
        yield return new object[] { "offsets", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8), "invalid data_offsets" };
        yield return new object[] { "meta", Build("{\"__metadata__\":{\"a\":1}}", 0), "not a string" };
        // The reference crate's other refusals (issue 12): each of these used to load, or to end in a stack trace.
        const string two = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}  ";
        yield return new object[] { "oneshort", Build(two, 8, (ulong)Encoding.UTF8.GetByteCount(two) - 1), "data area is 9 bytes" };
        yield return new object[] { "trailing", Build(ok, 12), "data area is 12 bytes" };
        yield return new object[] { "gap", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "gap of 4 bytes" };
        yield return new object[] { "nozero", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "gap of 4 bytes" };
        yield return new object[] { "dupfield", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "duplicate \"shape\"" };
        yield return new object[] { "dupname", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "duplicate key" };
        yield return new object[] { "stroffsets", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", 8), "invalid data_offsets" };
        yield return new object[] { "floatoffsets", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8), "invalid data_offsets" };
        yield return new object[] { "floatdim", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8), "non-integer dimension" };
        yield return new object[] { "threeoffsets", Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8), "needs \"data_offsets\"" };
        yield return new object[] { "hugeshape", Build("{\"x\":{\"dtype\":\"F64\",\"shape\":[2147483647,2147483647,2147483647],\"data_offsets\":[0,8]}}", 8), "too large" };
        yield return new object[] { "nobrace", Build(" " + ok, 8), "does not start with '{'" };
        yield return new object[] { "lonesurrogate", Build("{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "invalid string" };
        yield return new object[] { "lonesurrogatemeta", Build("{\"__metadata__\":{\"a\":\"\\udc00\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "invalid string" };
        var badUtf8 = Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"a\":\"??\"}}", 8);
        int q = Array.IndexOf(badUtf8, (byte)'?');
        badUtf8[q] = 0xC3; badUtf8[q + 1] = 0x28; // a two-byte lead followed by a non-continuation byte
        yield return new object[] { "badutf8", badUtf8, "not valid UTF-8" };
    }

    [Theory]
    [MemberData(nameof(CorruptCases))]
    public void Open_CorruptFile_ThrowsInvalidDataNamingFileAndProblem(string name, byte[] bytes, string problem)
    {
        string path = TempPath(name + ".safetensors");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<InvalidInputException>(() => SafeTensors.Open(path).Dispose());
        Assert.Contains(path, ex.Message);
        Assert.Contains(problem, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Open_ReferenceOnlyDTypesAndNullMetadata_OpensAndListsThem()
    {
        // U16/U32/U64 and FP8 are valid safetensors dtypes: a file holding them opens (only reading them is refused).
        string path = TempPath("u16.safetensors");
        File.WriteAllBytes(path, Build("{\"__metadata__\":null,\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8));
        using var f = SafeTensors.Open(path);
        Assert.Equal(new[] { SafeTensorDType.U16, SafeTensorDType.F8_E4M3 }, f.Tensors.Select(t => t.DType));
        Assert.Empty(f.Metadata);
        Assert.Throws<InvalidInputException>(() => f.ReadF32("a"));
    }

    [Fact]
    public void Open_Symlink_SizesAndMapsTheTarget()
    {
        using var scope = TensorScope.Begin();
        Directory.CreateDirectory(TempPath("blobs"));
        string blob = TempPath(Path.Combine("blobs", "0123abcd"));
        SafeTensors.Save(blob, new Dictionary<string, Tensor> { ["w"] = TestUtil.Random(5, 64, 64) });
        string link = TempPath("model.safetensors");
        File.CreateSymbolicLink(link, Path.Combine("blobs", "0123abcd"));
        using var f = SafeTensors.Open(link);
        using var w = f.ReadF32("w");
        TestUtil.AssertClose(TestUtil.Random(5, 64, 64), w, 0f, what: "w through the link");
    }

    [Fact]
    public void Open_MissingFile_ThrowsFileNotFound()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => SafeTensors.Open(TempPath("nope.safetensors")));
        Assert.Contains("nope.safetensors", ex.Message);
    }

    [Fact]
    public void ReadF32_IntegerTensorOrMissingName_ThrowsClearError()
    {
        using var f = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "e2e_seeded", "case0.safetensors"));
        Assert.Contains("U8", Assert.Throws<InvalidInputException>(() => f.ReadF32("image_u8_hwc")).Message);
        Assert.Contains("no tensor named", Assert.Throws<KeyNotFoundException>(() => f.Info("missing")).Message);
    }
}
