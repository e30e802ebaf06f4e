// Backward operators of the activations for the vectorized driver: Apply(g, v) is the upstream gradient g times the
// activation's derivative at the saved value v (the input for SiLU/quick-GELU, the output for sigmoid/tanh/ReLU).
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>d silu(x)/dx = s (1 + x (1 - s)) with s = sigmoid(x); v is the input.</summary>
public struct SiluGradOp : IBinaryOp
{
    public static float Apply(float g, float x) { float s = 1f / (1f + MathF.Exp(-x)); return g * s * (1f + x * (1f - s)); }
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> x)
    {
        var s = Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));
        return g * s * (Vector256<float>.One + x * (Vector256<float>.One - s));
    }
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> x)
    {
        var s = Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(-x));
        return g * s * (Vector512<float>.One + x * (Vector512<float>.One - s));
    }
}

/// <summary>quick_gelu(x) = x sigmoid(1.702 x): derivative s (1 + 1.702 x (1 - s)); v is the input.</summary>
public struct QuickGeluGradOp : IBinaryOp
{
    public static float Apply(float g, float x) { float s = 1f / (1f + MathF.Exp(-1.702f * x)); return g * s * (1f + 1.702f * x * (1f - s)); }
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> x)
    {
        var s = Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(x * -1.702f));
        return g * s * (Vector256<float>.One + x * 1.702f * (Vector256<float>.One - s));
    }
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> x)
    {
        var s = Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(x * -1.702f));
        return g * s * (Vector512<float>.One + x * 1.702f * (Vector512<float>.One - s));
    }
}

/// <summary>d sigmoid/dx = y (1 - y); v is the output y.</summary>
public struct SigmoidGradOp : IBinaryOp
{
    public static float Apply(float g, float y) => g * y * (1f - y);
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> y) => g * y * (Vector256<float>.One - y);
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> y) => g * y * (Vector512<float>.One - y);
}

/// <summary>d relu/dx = 1 where the output y is positive, else 0; v is the output y.</summary>
public struct ReluGradOp : IBinaryOp
{
    public static float Apply(float g, float y) => y > 0f ? g : 0f;
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> y) => Vector256.ConditionalSelect(Vector256.GreaterThan(y, Vector256<float>.Zero), g, Vector256<float>.Zero);
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> y) => Vector512.ConditionalSelect(Vector512.GreaterThan(y, Vector512<float>.Zero), g, Vector512<float>.Zero);
}

/// <summary>d tanh/dx = 1 - y^2; v is the output y.</summary>
public struct TanhGradOp : IBinaryOp
{
    public static float Apply(float g, float y) => g * (1f - y * y);
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> y) => g * (Vector256<float>.One - y * y);
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> y) => g * (Vector512<float>.One - y * y);
}

/// <summary>d gelu(x)/dx = Phi(x) + x phi(x) (erf form); v is the input.</summary>
public struct GeluGradOp : IBinaryOp
{
    private const float InvSqrt2 = 0.70710678118654752f, InvSqrt2Pi = 0.3989422804014327f;
    public static float Apply(float g, float x) =>
        g * (0.5f * (1f + ErfMath.Erf(x * InvSqrt2)) + x * InvSqrt2Pi * MathF.Exp(-0.5f * x * x));
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> x) =>
        g * ((Vector256<float>.One + ErfMath.Erf(x * InvSqrt2)) * 0.5f + x * InvSqrt2Pi * Vector256.Exp(x * x * -0.5f));
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> x) =>
        g * ((Vector512<float>.One + ErfMath.Erf(x * InvSqrt2)) * 0.5f + x * InvSqrt2Pi * Vector512.Exp(x * x * -0.5f));
}

/// <summary>
/// Tanh-approximated GELU: with u = c (x + 0.044715 x^3) and t = tanh u, the derivative is
/// 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2); v is the input.
/// </summary>
public struct GeluTanhGradOp : IBinaryOp
{
    private const float C = 0.7978845608028654f, A = 0.044715f;
    public static float Apply(float g, float x)
    {
        float t = MathF.Tanh(C * (x + A * x * x * x));
        return g * (0.5f * (1f + t) + 0.5f * x * (1f - t * t) * C * (1f + 3f * A * x * x));
    }
    public static Vector256<float> Apply(Vector256<float> g, Vector256<float> x)
    {
        var x2 = x * x;
        var t = TanhOp.Apply((x + x2 * x * A) * C);
        var one = Vector256<float>.One;
        return g * ((one + t) * 0.5f + x * 0.5f * (one - t * t) * C * (one + x2 * (3f * A)));
    }
    public static Vector512<float> Apply(Vector512<float> g, Vector512<float> x)
    {
        var x2 = x * x;
        var t = TanhOp.Apply((x + x2 * x * A) * C);
        var one = Vector512<float>.One;
        return g * ((one + t) * 0.5f + x * 0.5f * (one - t * t) * C * (one + x2 * (3f * A)));
    }
}

/// <summary>
/// GEGLU's backward in one pass: with e = erf(x / sqrt 2) computed once per element, dh = g gelu(x) and
/// dx = gelu'(x) (g h), written as GeluOp, MulOp and GeluGradOp write them, so the bits are those of the unfused rules.
/// </summary>
public static unsafe class GeluGateGrad
{
    private const float InvSqrt2 = 0.70710678118654752f, InvSqrt2Pi = 0.3989422804014327f;

    /// <summary>g, h, x (the gate), dh, dx: n floats each.</summary>
    public static void Serial(float* g, float* h, float* x, float* dh, float* dx, long n)
    {
        long i = 0;
        if (VectorDriver.UseVector512)
            for (; i + 16 <= n; i += 16)
            {
                var gv = Vector512.Load(g + i);
                var xv = Vector512.Load(x + i);
                var onePlus = Vector512<float>.One + ErfMath.Erf(xv * InvSqrt2);
                Vector512.Store(gv * (xv * 0.5f * onePlus), dh + i);
                Vector512.Store(gv * Vector512.Load(h + i) * (onePlus * 0.5f + xv * InvSqrt2Pi * Vector512.Exp(xv * xv * -0.5f)), dx + i);
            }
        if (VectorDriver.UseVector256)
            for (; i + 8 <= n; i += 8)
            {
                var gv = Vector256.Load(g + i);
                var xv = Vector256.Load(x + i);
                var onePlus = Vector256<float>.One + ErfMath.Erf(xv * InvSqrt2);
                Vector256.Store(gv * (xv * 0.5f * onePlus), dh + i);
                Vector256.Store(gv * Vector256.Load(h + i) * (onePlus * 0.5f + xv * InvSqrt2Pi * Vector256.Exp(xv * xv * -0.5f)), dx + i);
            }
        for (; i < n; i++)
        {
            float xi = x[i], e = ErfMath.Erf(xi * InvSqrt2);
            dh[i] = g[i] * (0.5f * xi * (1f + e));
            dx[i] = g[i] * h[i] * (0.5f * (1f + e) + xi * InvSqrt2Pi * MathF.Exp(-0.5f * xi * xi));
        }
    }
}
