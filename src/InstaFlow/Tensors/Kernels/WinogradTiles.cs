// The two Winograd algorithms Conv2dWinograd runs, F(4x4, 3x3) and F(6x6, 3x3), as operator structs: tile sizes and
// the weight, input and output transforms, each applied to one line of a tile for 16 tiles at once (one per lane).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>Which Winograd algorithm a 3x3 conv runs: output tiles of 4x4 (from 6x6 inputs) or 6x6 (from 8x8).</summary>
public enum WinogradTile { F4 = 4, F6 = 6 }

/// <summary>
/// One F(m x m, 3x3) algorithm, Y = A^T [ (G g G^T) . (B^T d B) ] A. Each transform reads one line of a tile (3 taps,
/// or Alpha inputs or products) at src[i * stride], 16 tiles per vector, and writes its outputs to o[i * os].
/// </summary>
internal unsafe interface IWinogradTile
{
    /// <summary>Output tile side m.</summary>
    static abstract int M { get; }
    /// <summary>Input tile side m + 2, and the number of points.</summary>
    static abstract int Alpha { get; }
    /// <summary>G: 3 filter taps to Alpha values.</summary>
    static abstract void Weight(float* src, long stride, Vector512<float>* o, int os);
    /// <summary>B^T: Alpha inputs to Alpha values.</summary>
    static abstract void Input(float* src, long stride, Vector512<float>* o, int os);
    /// <summary>A^T: Alpha products to M outputs.</summary>
    static abstract void Output(float* src, long stride, Vector512<float>* o, int os);
}

/// <summary>
/// F(4x4, 3x3) at the points 0, 1, -1, 2, -2 and infinity (Lavin and Gray, 2016), with G's rows scaled so that the
/// transforms only scale by up to 25 (input) and 8 (output).
/// </summary>
internal readonly unsafe struct WinogradF4 : IWinogradTile
{
    public static int M => 4;
    public static int Alpha => 6;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Weight(float* src, long stride, Vector512<float>* o, int os)
    {
        var g0 = Vector512.Load(src); var g1 = Vector512.Load(src + stride); var g2 = Vector512.Load(src + 2 * stride);
        var s = g0 + g2;
        var p = g0 * (1f / 24) + g2 * (1f / 6);
        var q = g1 * (1f / 12);
        o[0] = g0 * 0.25f;
        o[os] = -(s + g1) * (1f / 6);
        o[2 * os] = (g1 - s) * (1f / 6);
        o[3 * os] = p + q;
        o[4 * os] = p - q;
        o[5 * os] = g2;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Input(float* src, long stride, Vector512<float>* o, int os)
    {
        var d0 = Vector512.Load(src); var d1 = Vector512.Load(src + stride); var d2 = Vector512.Load(src + 2 * stride);
        var d3 = Vector512.Load(src + 3 * stride); var d4 = Vector512.Load(src + 4 * stride); var d5 = Vector512.Load(src + 5 * stride);
        var four = Vector512.Create(4f);
        var a = d4 - 4f * d2;
        var b = d3 - 4f * d1;
        var c = d4 - d2;
        var e = 2f * (d3 - d1);
        o[0] = Vector512.FusedMultiplyAdd(four, d0, d4) - 5f * d2;
        o[os] = a + b;
        o[2 * os] = a - b;
        o[3 * os] = c + e;
        o[4 * os] = c - e;
        o[5 * os] = Vector512.FusedMultiplyAdd(four, d1, d5) - 5f * d3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Output(float* src, long stride, Vector512<float>* o, int os)
    {
        var m0 = Vector512.Load(src); var m1 = Vector512.Load(src + stride); var m2 = Vector512.Load(src + 2 * stride);
        var m3 = Vector512.Load(src + 3 * stride); var m4 = Vector512.Load(src + 4 * stride); var m5 = Vector512.Load(src + 5 * stride);
        var a = m1 + m2; var b = m1 - m2;
        var c = m3 + m4; var e = m3 - m4;
        o[0] = m0 + a + c;
        o[os] = Vector512.FusedMultiplyAdd(Vector512.Create(2f), e, b);
        o[2 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(4f), c, a);
        o[3 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(8f), e, b) + m5;
    }

    /// <summary>
    /// A (the transpose of <see cref="Output"/>'s A^T): 4 output gradients at src[i * ss] to the 6 products' gradients,
    /// for the weight gradient (<see cref="Conv2dWinogradWeightGrad"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputAdjoint(Vector512<float>* src, int ss, Vector512<float>* o, int os)
    {
        var y0 = src[0]; var y1 = src[ss]; var y2 = src[2 * ss]; var y3 = src[3 * ss];
        var e = y0 + y2; var f = y1 + y3;
        var e4 = Vector512.FusedMultiplyAdd(Vector512.Create(4f), y2, y0);
        var f4 = Vector512.FusedMultiplyAdd(Vector512.Create(4f), y3, y1);
        o[0] = y0;
        o[os] = e + f;
        o[2 * os] = e - f;
        o[3 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(2f), f4, e4);
        o[4 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(-2f), f4, e4);
        o[5 * os] = y3;
    }

    /// <summary>G^T (the transpose of <see cref="Weight"/>'s G): 6 transformed-weight gradients at src[i * ss] to the 3 taps' gradients.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WeightAdjoint(Vector512<float>* src, int ss, Vector512<float>* o, int os)
    {
        var u0 = src[0]; var u1 = src[ss]; var u2 = src[2 * ss]; var u3 = src[3 * ss]; var u4 = src[4 * ss]; var u5 = src[5 * ss];
        var s = u1 + u2; var d = u2 - u1;
        var p = u3 + u4; var q = u3 - u4;
        o[0] = u0 * 0.25f - s * (1f / 6) + p * (1f / 24);
        o[os] = d * (1f / 6) + q * (1f / 12);
        o[2 * os] = (p - s) * (1f / 6) + u5;
    }
}

/// <summary>
/// F(6x6, 3x3) at the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity: 64 products for 36 outputs, 1.27x fewer than
/// F(4x4)'s 36 for 16, at a larger rounding error (the input transform scales by up to 5.25 per line, the output
/// transform by up to 32; see the error test). G's rows carry the interpolation's denominators (1, 2/9, 1/90, 32/45).
/// </summary>
internal readonly unsafe struct WinogradF6 : IWinogradTile
{
    public static int M => 6;
    public static int Alpha => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Weight(float* src, long stride, Vector512<float>* o, int os)
    {
        var g0 = Vector512.Load(src); var g1 = Vector512.Load(src + stride); var g2 = Vector512.Load(src + 2 * stride);
        var s = g0 + g2;
        var p = g0 * (1f / 90) + g2 * (2f / 45);
        var q = g1 * (1f / 45);
        var p2 = g0 * (32f / 45) + g2 * (8f / 45);
        var q2 = g1 * (16f / 45);
        o[0] = g0;
        o[os] = (s + g1) * (-2f / 9);
        o[2 * os] = (s - g1) * (-2f / 9);
        o[3 * os] = p + q;
        o[4 * os] = p - q;
        o[5 * os] = p2 + q2;
        o[6 * os] = p2 - q2;
        o[7 * os] = g2;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Input(float* src, long stride, Vector512<float>* o, int os)
    {
        var d0 = Vector512.Load(src); var d1 = Vector512.Load(src + stride); var d2 = Vector512.Load(src + 2 * stride);
        var d3 = Vector512.Load(src + 3 * stride); var d4 = Vector512.Load(src + 4 * stride); var d5 = Vector512.Load(src + 5 * stride);
        var d6 = Vector512.Load(src + 6 * stride); var d7 = Vector512.Load(src + 7 * stride);
        // Rows 1-6 pair up as x + y and x - y: x from the even inputs, y from the odd ones.
        var a = Vector512.FusedMultiplyAdd(Vector512.Create(-4.25f), d4, d2 + d6);
        var b = Vector512.FusedMultiplyAdd(Vector512.Create(-4.25f), d3, d1 + d5);
        var c = Vector512.FusedMultiplyAdd(Vector512.Create(0.25f), d2, Vector512.FusedMultiplyAdd(Vector512.Create(-1.25f), d4, d6));
        var e = Vector512.FusedMultiplyAdd(Vector512.Create(0.5f), d1, Vector512.FusedMultiplyAdd(Vector512.Create(-2.5f), d3, 2f * d5));
        var c2 = Vector512.FusedMultiplyAdd(Vector512.Create(4f), Vector512.FusedMultiplyAdd(Vector512.Create(-1.25f), d4, d2), d6);
        var e2 = Vector512.FusedMultiplyAdd(Vector512.Create(2f), d1, Vector512.FusedMultiplyAdd(Vector512.Create(-2.5f), d3, 0.5f * d5));
        o[0] = Vector512.FusedMultiplyAdd(Vector512.Create(5.25f), d4 - d2, d0 - d6);
        o[os] = a + b;
        o[2 * os] = a - b;
        o[3 * os] = c + e;
        o[4 * os] = c - e;
        o[5 * os] = c2 + e2;
        o[6 * os] = c2 - e2;
        o[7 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(5.25f), d3 - d5, d7 - d1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Output(float* src, long stride, Vector512<float>* o, int os)
    {
        var m0 = Vector512.Load(src); var m1 = Vector512.Load(src + stride); var m2 = Vector512.Load(src + 2 * stride);
        var m3 = Vector512.Load(src + 3 * stride); var m4 = Vector512.Load(src + 4 * stride); var m5 = Vector512.Load(src + 5 * stride);
        var m6 = Vector512.Load(src + 6 * stride); var m7 = Vector512.Load(src + 7 * stride);
        var a1 = m1 + m2; var b1 = m1 - m2;
        var a2 = m3 + m4; var b2 = m3 - m4;
        var a3 = m5 + m6; var b3 = m5 - m6;
        o[0] = m0 + a1 + a2 + a3;
        o[os] = Vector512.FusedMultiplyAdd(Vector512.Create(2f), b2, Vector512.FusedMultiplyAdd(Vector512.Create(0.5f), b3, b1));
        o[2 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(4f), a2, Vector512.FusedMultiplyAdd(Vector512.Create(0.25f), a3, a1));
        o[3 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(8f), b2, Vector512.FusedMultiplyAdd(Vector512.Create(0.125f), b3, b1));
        o[4 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(16f), a2, Vector512.FusedMultiplyAdd(Vector512.Create(0.0625f), a3, a1));
        o[5 * os] = Vector512.FusedMultiplyAdd(Vector512.Create(32f), b2, Vector512.FusedMultiplyAdd(Vector512.Create(0.03125f), b3, b1)) + m7;
    }
}
