// Conversions between float32 and the 16-bit float formats of weight files (IEEE half "F16", bfloat16 "BF16"):
// branch-free integer bit manipulation, vectorized with Vector256, plus scalar versions that define the results.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class HalfConvert
{
    // Half -> float re-biases the exponent from 15 to 127; a half subnormal becomes a float normal by treating the
    // mantissa as a float with exponent 2^-14 and subtracting that power of two (an exact float operation).
    private const uint ExpMaskShifted = 0x7C00u << 13;   // half exponent field after the << 13
    private const uint ExpRebias = (127 - 15) << 23;
    private const uint InfNanRebias = (128 - 16) << 23;  // pushes exponent 31 to 255
    private const uint SubnormalMagic = 113u << 23;      // 2^-14 as float bits

    // Float -> half with round-to-nearest-even.
    private const uint F32Infinity = 255u << 23;
    private const uint F16Overflow = (127u + 16) << 23;  // first float magnitude that rounds to half infinity
    private const uint F16MinNormal = 113u << 23;        // 2^-14: below it the result is subnormal or zero
    private const uint DenormMagic = ((127u - 15) + (23 - 10) + 1) << 23; // 0.5: adding it rounds to the 2^-24 grid
    private const ushort HalfQuietNaN = 0x7E00;
    private const ushort BFloat16QuietNaN = 0x7FC0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToF32Scalar(ushort h)
    {
        uint o = (uint)(h & 0x7FFF) << 13;
        uint exp = o & ExpMaskShifted;
        o += ExpRebias;
        if (exp == ExpMaskShifted) o += InfNanRebias;
        else if (exp == 0)
        {
            o += 1u << 23;
            o = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(o) - BitConverter.UInt32BitsToSingle(SubnormalMagic));
        }
        return BitConverter.UInt32BitsToSingle(o | (uint)(h & 0x8000) << 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort F32ToF16Scalar(float value)
    {
        uint f = BitConverter.SingleToUInt32Bits(value);
        uint sign = f & 0x80000000u;
        f ^= sign;
        uint o;
        if (f >= F16Overflow) o = f > F32Infinity ? HalfQuietNaN : 0x7C00u;
        else if (f < F16MinNormal)
        {
            // The float adder rounds the value to a multiple of 2^-24 (half-subnormal spacing) with ties to even.
            float r = BitConverter.UInt32BitsToSingle(f) + BitConverter.UInt32BitsToSingle(DenormMagic);
            o = BitConverter.SingleToUInt32Bits(r) - DenormMagic;
        }
        else
        {
            uint mantOdd = (f >> 13) & 1;
            f += unchecked((uint)((15 - 127) << 23)) + 0xFFF + mantOdd;
            o = f >> 13;
        }
        return (ushort)(o | sign >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToF32Scalar(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort F32ToBF16Scalar(float value)
    {
        if (float.IsNaN(value)) return BFloat16QuietNaN;
        uint u = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }

    public static void F16ToF32(ReadOnlySpan<ushort> src, Span<float> dst) => Run(src, dst, &F16ToF32, nameof(F16ToF32));
    public static void BF16ToF32(ReadOnlySpan<ushort> src, Span<float> dst) => Run(src, dst, &BF16ToF32, nameof(BF16ToF32));
    public static void F32ToF16(ReadOnlySpan<float> src, Span<ushort> dst) => Run(src, dst, &F32ToF16, nameof(F32ToF16));
    public static void F32ToBF16(ReadOnlySpan<float> src, Span<ushort> dst) => Run(src, dst, &F32ToBF16, nameof(F32ToBF16));

    private static void Run<TIn, TOut>(ReadOnlySpan<TIn> src, Span<TOut> dst, delegate*<TIn*, TOut*, long, void> kernel, string op)
        where TIn : unmanaged where TOut : unmanaged
    {
        if (src.Length != dst.Length) throw new ArgumentException($"{op}: source has {src.Length} elements but destination has {dst.Length}");
        fixed (TIn* s = src) fixed (TOut* d = dst) kernel(s, d, src.Length);
    }

    public static void F16ToF32(ushort* src, float* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var expMask = Vector256.Create(ExpMaskShifted);
            var rebias = Vector256.Create(ExpRebias);
            var infRebias = Vector256.Create(InfNanRebias);
            var oneExp = Vector256.Create(1u << 23);
            var magic = Vector256.Create(SubnormalMagic).AsSingle();
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                F16ToF32Block(lo, expMask, rebias, infRebias, oneExp, magic).Store(dst + i);
                F16ToF32Block(hi, expMask, rebias, infRebias, oneExp, magic).Store(dst + i + 8);
            }
        }
        for (; i < n; i++) dst[i] = F16ToF32Scalar(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> F16ToF32Block(Vector256<uint> h, Vector256<uint> expMask, Vector256<uint> rebias,
        Vector256<uint> infRebias, Vector256<uint> oneExp, Vector256<float> magic)
    {
        var o = (h & Vector256.Create(0x7FFFu)) << 13;
        var exp = o & expMask;
        o += rebias;
        var isInfNan = Vector256.Equals(exp, expMask);
        var isSub = Vector256.Equals(exp, Vector256<uint>.Zero);
        o += infRebias & isInfNan;
        var sub = ((o + oneExp).AsSingle() - magic).AsUInt32();
        o = Vector256.ConditionalSelect(isSub, sub, o);
        return (o | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    public static void BF16ToF32(ushort* src, float* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                (lo << 16).AsSingle().Store(dst + i);
                (hi << 16).AsSingle().Store(dst + i + 8);
            }
        for (; i < n; i++) dst[i] = BF16ToF32Scalar(src[i]);
    }

    public static void F32ToF16(float* src, ushort* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var lo = F32ToF16Block(Vector256.Load(src + i).AsUInt32());
                var hi = F32ToF16Block(Vector256.Load(src + i + 8).AsUInt32());
                Vector256.Narrow(lo, hi).Store(dst + i);
            }
        for (; i < n; i++) dst[i] = F32ToF16Scalar(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> F32ToF16Block(Vector256<uint> f)
    {
        var sign = f & Vector256.Create(0x80000000u);
        f ^= sign;
        // Magnitudes are below 2^31, so signed comparisons order them correctly.
        var fi = f.AsInt32();
        var overflow = Vector256.GreaterThanOrEqual(fi, Vector256.Create((int)F16Overflow)).AsUInt32();
        var isNaN = Vector256.GreaterThan(fi, Vector256.Create((int)F32Infinity)).AsUInt32();
        var isSub = Vector256.LessThan(fi, Vector256.Create((int)F16MinNormal)).AsUInt32();

        var big = Vector256.ConditionalSelect(isNaN, Vector256.Create((uint)HalfQuietNaN), Vector256.Create(0x7C00u));
        var denorm = Vector256.Create(DenormMagic);
        var small = (f.AsSingle() + denorm.AsSingle()).AsUInt32() - denorm;
        var mantOdd = (f >> 13) & Vector256<uint>.One;
        var normal = (f + Vector256.Create(unchecked((uint)((15 - 127) << 23)) + 0xFFF) + mantOdd) >> 13;

        var o = Vector256.ConditionalSelect(isSub, small, normal);
        o = Vector256.ConditionalSelect(overflow, big, o);
        return o | (sign >> 16);
    }

    public static void F32ToBF16(float* src, ushort* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var lo = F32ToBF16Block(Vector256.Load(src + i));
                var hi = F32ToBF16Block(Vector256.Load(src + i + 8));
                Vector256.Narrow(lo, hi).Store(dst + i);
            }
        for (; i < n; i++) dst[i] = F32ToBF16Scalar(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> F32ToBF16Block(Vector256<float> x)
    {
        var u = x.AsUInt32();
        var rounded = (u + Vector256.Create(0x7FFFu) + ((u >> 16) & Vector256<uint>.One)) >> 16;
        var isNaN = ~Vector256.Equals(x, x).AsUInt32();
        return Vector256.ConditionalSelect(isNaN, Vector256.Create((uint)BFloat16QuietNaN), rounded);
    }
}
