// Float logarithm and sine/cosine with the exact operation order of the Cephes-derived avx_mathfun.h that PyTorch's
// AVX2 randn kernel uses, so Box-Muller noise matches PyTorch bit for bit rather than to within an ulp.
using System.Runtime.CompilerServices;

namespace InstaFlow.Tensors.Random;

internal static class CephesMath
{
    // GCC compiles the intrinsics' mul/add pairs into fused multiply-adds (-mfma, fp-contract=fast), contracting the
    // first multiplication in statement order whose only use is an add; each MulAdd below is one such contraction.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MulAdd(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    private const float SqrtHalf = 0.707106781186547524f;
    private const float LogP0 = 7.0376836292E-2f, LogP1 = -1.1514610310E-1f, LogP2 = 1.1676998740E-1f;
    private const float LogP3 = -1.2420140846E-1f, LogP4 = 1.4249322787E-1f, LogP5 = -1.6668057665E-1f;
    private const float LogP6 = 2.0000714765E-1f, LogP7 = -2.4999993993E-1f, LogP8 = 3.3333331174E-1f;
    private const float LogQ1 = -2.12194440e-4f, LogQ2 = 0.693359375f;

    /// <summary>Natural log for x in (0, 1] (Box-Muller radius input): mantissa/exponent split and a degree-9 polynomial.</summary>
    public static float Log(float x)
    {
        x = MathF.Max(x, BitConverter.UInt32BitsToSingle(0x00800000));
        uint bits = BitConverter.SingleToUInt32Bits(x);
        float e = (int)(bits >> 23) - 127;
        e += 1f;
        x = BitConverter.UInt32BitsToSingle((bits & ~0x7F800000u) | BitConverter.SingleToUInt32Bits(0.5f));
        float tmp = x < SqrtHalf ? x : 0f;
        x -= 1f;
        if (tmp != 0f) e -= 1f;
        x += tmp;
        float z = x * x;
        float y = MulAdd(LogP0, x, LogP1);
        y = MulAdd(y, x, LogP2);
        y = MulAdd(y, x, LogP3);
        y = MulAdd(y, x, LogP4);
        y = MulAdd(y, x, LogP5);
        y = MulAdd(y, x, LogP6);
        y = MulAdd(y, x, LogP7);
        y = MulAdd(y, x, LogP8);
        y *= x;
        y = MulAdd(y, z, e * LogQ1);
        y = MulAdd(z, -0.5f, y);
        x += y;
        return MulAdd(e, LogQ2, x);
    }

    private const float FourOverPi = 1.27323954473516f;
    private const float Dp1 = -0.78515625f, Dp2 = -2.4187564849853515625e-4f, Dp3 = -3.77489497744594108e-8f;
    private const float SinP0 = -1.9515295891E-4f, SinP1 = 8.3321608736E-3f, SinP2 = -1.6666654611E-1f;
    private const float CosP0 = 2.443315711809948E-005f, CosP1 = -1.388731625493765E-003f, CosP2 = 4.166664568298827E-002f;

    /// <summary>Sine and cosine of x &gt;= 0 (Box-Muller angles are in [0, 2pi)): octant reduction and two polynomials.</summary>
    public static void SinCos(float x, out float sin, out float cos)
    {
        int j = (int)(x * FourOverPi);
        j = (j + 1) & ~1;
        float y = j;
        uint signSin = (uint)(j & 4) << 29;
        uint signCos = (uint)(~(j - 2) & 4) << 29;
        bool firstOctantPoly = (j & 2) == 0;

        // Extended-precision reduction: pi/4 split into three parts so x - y*pi/4 loses no bits.
        x = MulAdd(y, Dp1, x);
        x = MulAdd(y, Dp2, x);
        x = MulAdd(y, Dp3, x);

        float z = x * x;
        float c = MulAdd(CosP0, z, CosP1);
        c = MulAdd(c, z, CosP2);
        c *= z;
        c = MulAdd(c, z, -(z * 0.5f));
        c += 1f;

        float s = MulAdd(SinP0, z, SinP1);
        s = MulAdd(s, z, SinP2);
        s *= z;
        s = MulAdd(s, x, x);

        float sinAbs = firstOctantPoly ? s : c;
        float cosAbs = firstOctantPoly ? c : s;
        sin = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(sinAbs) ^ signSin);
        cos = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(cosAbs) ^ signCos);
    }
}
