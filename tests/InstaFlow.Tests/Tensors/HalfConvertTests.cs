// F16/BF16 <-> F32 conversions: scalar versions against independent references (System.Half, exact double rounding),
// vectorized versions against the scalar ones on odd sizes, and the special values (inf, nan, subnormals, overflow).
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

public class HalfConvertTests
{
    private static readonly int[] OddSizes = { 1, 15, 16, 17, 33, 1001 };

    private static float[] SpecialFloats() => new[]
    {
        0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, -65520f, 1e6f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
        6.1035156e-5f, 6.1e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 1e-10f, -3e-6f,
        float.Epsilon, float.MaxValue, 1.00048828125f, 1.000732421875f, 3.3895314e38f, 3.4e38f, 1.0039062f, 1.0117188f,
    };

    private static float[] TestFloats(int seed, int n)
    {
        var rng = new Random(seed);
        var specials = SpecialFloats();
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (i % 3) switch
            {
                0 => specials[rng.Next(specials.Length)],
                1 => (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 20))),
                _ => BitConverter.Int32BitsToSingle(rng.Next(int.MinValue, int.MaxValue)),
            };
        return a;
    }

    [Fact]
    public void F16ToF32Scalar_AllBitPatterns_MatchSystemHalf()
    {
        for (int h = 0; h <= ushort.MaxValue; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            float actual = HalfConvert.F16ToF32Scalar((ushort)h);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{h:X4}: expected NaN, got {actual}");
            else Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual),
                $"0x{h:X4}: expected {expected}, got {actual} (diff {Math.Abs(expected - actual)})");
        }
    }

    [Fact]
    public void F32ToF16Scalar_SpecialAndRandomValues_MatchSystemHalfRoundToNearestEven()
    {
        foreach (var f in TestFloats(1, 20000))
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)f);
            ushort actual = HalfConvert.F32ToF16Scalar(f);
            if (float.IsNaN(f)) Assert.True((actual & 0x7C00) == 0x7C00 && (actual & 0x3FF) != 0, $"NaN -> 0x{actual:X4}");
            else Assert.True(expected == actual, $"{f:R}: expected 0x{expected:X4}, got 0x{actual:X4} (diff {Math.Abs((float)BitConverter.UInt16BitsToHalf(actual) - f)})");
        }
    }

    [Fact]
    public void F32ToBF16Scalar_SpecialAndRandomValues_RoundToNearestEven()
    {
        foreach (var f in TestFloats(2, 20000))
        {
            ushort actual = HalfConvert.F32ToBF16Scalar(f);
            if (float.IsNaN(f)) { Assert.True(float.IsNaN(HalfConvert.BF16ToF32Scalar(actual)), $"NaN -> 0x{actual:X4}"); continue; }
            Assert.Equal(BF16Reference(f), actual);
        }
    }

    // Exact reference: pick the nearer of the two bfloat16 neighbours in double, ties to the even one.
    private static ushort BF16Reference(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        ushort lo = (ushort)(u >> 16);
        if ((u & 0xFFFF) == 0) return lo;
        ushort hi = (ushort)(lo + 1);
        double dLo = Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)lo << 16) - f);
        double dHi = Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)hi << 16) - f);
        if ((hi & 0x7F80) == 0x7F80 && (hi & 0x7F) == 0) dHi = Math.Abs(Math.Pow(2, 128) - Math.Abs(f)); // rounding to infinity
        if (dLo != dHi) return dLo < dHi ? lo : hi;
        return (lo & 1) == 0 ? lo : hi;
    }

    [Fact]
    public void BF16ToF32Scalar_AllBitPatterns_ShiftIntoHighHalf()
    {
        for (int b = 0; b <= ushort.MaxValue; b++)
            Assert.Equal((uint)b << 16, BitConverter.SingleToUInt32Bits(HalfConvert.BF16ToF32Scalar((ushort)b)));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Vectorized_OddSizes_EqualScalarBitwise(int n)
    {
        var floats = TestFloats(n, n);
        var halves = new ushort[n];
        for (int i = 0; i < n; i++) halves[i] = (ushort)new Random(n + i).Next(0, 65536);

        var f16 = new ushort[n]; HalfConvert.F32ToF16(floats, f16);
        var bf16 = new ushort[n]; HalfConvert.F32ToBF16(floats, bf16);
        var fromF16 = new float[n]; HalfConvert.F16ToF32(halves, fromF16);
        var fromBf16 = new float[n]; HalfConvert.BF16ToF32(halves, fromBf16);
        for (int i = 0; i < n; i++)
        {
            Assert.True(HalfConvert.F32ToF16Scalar(floats[i]) == f16[i], $"F32ToF16 at {i} of {n}: {floats[i]:R} -> 0x{f16[i]:X4}, scalar 0x{HalfConvert.F32ToF16Scalar(floats[i]):X4}");
            Assert.True(HalfConvert.F32ToBF16Scalar(floats[i]) == bf16[i], $"F32ToBF16 at {i} of {n}: {floats[i]:R}");
            Assert.True(BitConverter.SingleToUInt32Bits(HalfConvert.F16ToF32Scalar(halves[i])) == BitConverter.SingleToUInt32Bits(fromF16[i]),
                $"F16ToF32 at {i} of {n}: 0x{halves[i]:X4} -> {fromF16[i]}, scalar {HalfConvert.F16ToF32Scalar(halves[i])}");
            Assert.True(BitConverter.SingleToUInt32Bits(HalfConvert.BF16ToF32Scalar(halves[i])) == BitConverter.SingleToUInt32Bits(fromBf16[i]), $"BF16ToF32 at {i} of {n}");
        }
    }

    public static IEnumerable<object[]> Sizes() => OddSizes.Select(n => new object[] { n });

    [Fact]
    public void F16ToF32_MismatchedLengths_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => HalfConvert.F16ToF32(new ushort[3], new float[4]));
        Assert.Contains("3", ex.Message);
    }
}
