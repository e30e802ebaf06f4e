// Operator structs for element-wise math. Each has scalar, Vector256 and Vector512 bodies with the same formula,
// so the vector and scalar paths agree to rounding.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public struct AddOp : IBinaryOp
{
    public static float Apply(float a, float b) => a + b;
    public static Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a + b;
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a + b;
}

public struct SubOp : IBinaryOp
{
    public static float Apply(float a, float b) => a - b;
    public static Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a - b;
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a - b;
}

public struct MulOp : IBinaryOp
{
    public static float Apply(float a, float b) => a * b;
    public static Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a * b;
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a * b;
}

public struct DivOp : IBinaryOp
{
    public static float Apply(float a, float b) => a / b;
    public static Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a / b;
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a / b;
}

public struct ExpOp : IUnaryOp
{
    public static float Apply(float x) => MathF.Exp(x);
    public static Vector256<float> Apply(Vector256<float> x) => Vector256.Exp(x);
    public static Vector512<float> Apply(Vector512<float> x) => Vector512.Exp(x);
}

public struct SqrtOp : IUnaryOp
{
    public static float Apply(float x) => MathF.Sqrt(x);
    public static Vector256<float> Apply(Vector256<float> x) => Vector256.Sqrt(x);
    public static Vector512<float> Apply(Vector512<float> x) => Vector512.Sqrt(x);
}

public struct NegOp : IUnaryOp
{
    public static float Apply(float x) => -x;
    public static Vector256<float> Apply(Vector256<float> x) => -x;
    public static Vector512<float> Apply(Vector512<float> x) => -x;
}

public struct SigmoidOp : IUnaryOp
{
    // exp(-x) overflows to +inf for x < -88, giving 1/inf = 0: the correct limit, no NaN.
    public static float Apply(float x) => 1f / (1f + MathF.Exp(-x));
    public static Vector256<float> Apply(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));
    public static Vector512<float> Apply(Vector512<float> x) => Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(-x));
}

public struct ReluOp : IUnaryOp
{
    public static float Apply(float x) => x > 0f ? x : 0f;
    public static Vector256<float> Apply(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
    public static Vector512<float> Apply(Vector512<float> x) => Vector512.Max(x, Vector512<float>.Zero);
}

public struct SiluOp : IUnaryOp
{
    public static float Apply(float x) => x / (1f + MathF.Exp(-x));
    public static Vector256<float> Apply(Vector256<float> x) => x / (Vector256<float>.One + Vector256.Exp(-x));
    public static Vector512<float> Apply(Vector512<float> x) => x / (Vector512<float>.One + Vector512.Exp(-x));
}

public struct QuickGeluOp : IUnaryOp
{
    public static float Apply(float x) => x / (1f + MathF.Exp(-1.702f * x));
    public static Vector256<float> Apply(Vector256<float> x) => x / (Vector256<float>.One + Vector256.Exp(x * -1.702f));
    public static Vector512<float> Apply(Vector512<float> x) => x / (Vector512<float>.One + Vector512.Exp(x * -1.702f));
}

public struct TanhOp : IUnaryOp
{
    // tanh(x) = sign(x) * (1 - 2/(exp(2|x|)+1)); using |x| avoids cancellation for negative inputs.
    public static float Apply(float x) => MathF.Tanh(x);
    public static Vector256<float> Apply(Vector256<float> x)
    {
        var ax = Vector256.Abs(x);
        var e = Vector256.Exp(ax + ax);
        var t = Vector256<float>.One - Vector256.Create(2f) / (e + Vector256<float>.One);
        return Vector256.ConditionalSelect(Vector256.Create(-0f), x, t); // copy the sign bit of x
    }
    public static Vector512<float> Apply(Vector512<float> x)
    {
        var ax = Vector512.Abs(x);
        var e = Vector512.Exp(ax + ax);
        var t = Vector512<float>.One - Vector512.Create(2f) / (e + Vector512<float>.One);
        return Vector512.ConditionalSelect(Vector512.Create(-0f), x, t);
    }
}

/// <summary>GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)).</summary>
public struct GeluOp : IUnaryOp
{
    public static float Apply(float x) => 0.5f * x * (1f + ErfMath.Erf(x * 0.70710678118654752f));
    public static Vector256<float> Apply(Vector256<float> x) => x * 0.5f * (Vector256<float>.One + ErfMath.Erf(x * 0.70710678118654752f));
    public static Vector512<float> Apply(Vector512<float> x) => x * 0.5f * (Vector512<float>.One + ErfMath.Erf(x * 0.70710678118654752f));
}

/// <summary>GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
public struct GeluTanhOp : IUnaryOp
{
    private const float C = 0.7978845608028654f;
    public static float Apply(float x) => 0.5f * x * (1f + MathF.Tanh(C * (x + 0.044715f * x * x * x)));
    public static Vector256<float> Apply(Vector256<float> x) => x * 0.5f * (Vector256<float>.One + TanhOp.Apply((x + x * x * x * 0.044715f) * C));
    public static Vector512<float> Apply(Vector512<float> x) => x * 0.5f * (Vector512<float>.One + TanhOp.Apply((x + x * x * x * 0.044715f) * C));
}

/// <summary>erf in float32: Abramowitz-Stegun 7.1.26 refined (max abs error ~1.2e-7 after the exp).</summary>
public static class ErfMath
{
    // erf(x) = 1 - t*exp(-x^2 + P(t)), t = 1/(1 + 0.5|x|) (Numerical Recipes erfc, fractional error < 1.2e-7).
    private const float C0 = -1.26551223f, C1 = 1.00002368f, C2 = 0.37409196f, C3 = 0.09678418f, C4 = -0.18628806f,
        C5 = 0.27886807f, C6 = -1.13520398f, C7 = 1.48851587f, C8 = -0.82215223f, C9 = 0.17087277f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x)
    {
        float z = MathF.Abs(x);
        float t = 1f / (1f + 0.5f * z);
        float p = C9;
        p = p * t + C8; p = p * t + C7; p = p * t + C6; p = p * t + C5;
        p = p * t + C4; p = p * t + C3; p = p * t + C2; p = p * t + C1; p = p * t + C0;
        float r = 1f - t * MathF.Exp(-z * z + p);
        return x < 0 ? -r : r;
    }

    public static Vector256<float> Erf(Vector256<float> x)
    {
        var z = Vector256.Abs(x);
        var t = Vector256<float>.One / (Vector256<float>.One + z * 0.5f);
        var p = Vector256.Create(C9);
        p = p * t + Vector256.Create(C8); p = p * t + Vector256.Create(C7); p = p * t + Vector256.Create(C6);
        p = p * t + Vector256.Create(C5); p = p * t + Vector256.Create(C4); p = p * t + Vector256.Create(C3);
        p = p * t + Vector256.Create(C2); p = p * t + Vector256.Create(C1); p = p * t + Vector256.Create(C0);
        var r = Vector256<float>.One - t * Vector256.Exp(p - z * z);
        return Vector256.ConditionalSelect(Vector256.Create(-0f), x, r);
    }

    public static Vector512<float> Erf(Vector512<float> x)
    {
        var z = Vector512.Abs(x);
        var t = Vector512<float>.One / (Vector512<float>.One + z * 0.5f);
        var p = Vector512.Create(C9);
        p = p * t + Vector512.Create(C8); p = p * t + Vector512.Create(C7); p = p * t + Vector512.Create(C6);
        p = p * t + Vector512.Create(C5); p = p * t + Vector512.Create(C4); p = p * t + Vector512.Create(C3);
        p = p * t + Vector512.Create(C2); p = p * t + Vector512.Create(C1); p = p * t + Vector512.Create(C0);
        var r = Vector512<float>.One - t * Vector512.Exp(p - z * z);
        return Vector512.ConditionalSelect(Vector512.Create(-0f), x, r);
    }

    /// <summary>Double-precision erf for reference kernels (series below 5, where erfc &lt; 2e-12).</summary>
    public static double ErfRef(double x)
    {
        double z = Math.Abs(x);
        if (z >= 5) return Math.Sign(x);
        double term = z, sum = z, z2 = z * z;
        for (int n = 1; n < 200; n++)
        {
            term *= -z2 / n;
            double add = term / (2 * n + 1);
            sum += add;
            if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
        }
        double r = sum * 2.0 / Math.Sqrt(Math.PI);
        return x < 0 ? -r : r;
    }
}
