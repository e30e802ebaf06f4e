// Fast conv2d kernels (groups 1, dilation 1, any stride, asymmetric zero padding) as GEMMs over image patches.
// Forward is an implicit GEMM (patches packed straight into B panels); the backward passes use im2col/col2im + SGEMM.
namespace InstaFlow.Tensors.Kernels;

/// <summary>Geometry of one conv2d: input [Batch, InC, H, W], weight [OutC, InC, KH, KW], output [Batch, OutC, OutH, OutW].</summary>
public readonly record struct Conv2dShape(int Batch, int InC, int H, int W, int OutC, int KH, int KW, int Stride,
    int PadTop, int PadBottom, int PadLeft, int PadRight)
{
    public int OutH => (H + PadTop + PadBottom - KH) / Stride + 1;
    public int OutW => (W + PadLeft + PadRight - KW) / Stride + 1;
    public bool IsPointwise => KH == 1 && KW == 1 && Stride == 1 && PadTop == 0 && PadBottom == 0 && PadLeft == 0 && PadRight == 0;
    public long Flops => 2L * Batch * OutC * OutH * OutW * InC * KH * KW;
}

public static unsafe class Conv2d
{
    /// <summary>y = conv(x, w) + bias (bias may be null).</summary>
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW;
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        var buf = NativeBuffer.Rent(GemmPacking.PackedSize(s.OutC, kdim, GemmKernels.MR) * sizeof(float));
        try
        {
            float* wp = (float*)buf.Pointer;
            GemmPacking.PackA(false, w, kdim, s.OutC, kdim, 1f, wp);
            for (int b = 0; b < s.Batch; b++)
            {
                float* xb = x + b * inImg, yb = y + b * outImg;
                if (s.IsPointwise) Gemm.RunDense(s.OutC, ohw, kdim, wp, new DenseSource(xb, ohw, false), 0f, bias, yb, ohw);
                else Gemm.Run(s.OutC, ohw, kdim, wp, new Conv2dPatches(s, xb), 0f, bias, yb, ohw);
            }
        }
        finally { buf.Release(); }
    }

    /// <summary>gx = conv_transpose(gy, w): the gradient with respect to the input (overwrites gx).</summary>
    public static void BackwardInput(in Conv2dShape s, float* gy, float* w, float* gx)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW;
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        var buf = s.IsPointwise ? null : NativeBuffer.Rent((long)kdim * ohw * 4);
        try
        {
            for (int b = 0; b < s.Batch; b++)
            {
                float* gyb = gy + b * outImg, gxb = gx + b * inImg;
                if (s.IsPointwise) { Gemm.Sgemm(true, false, kdim, ohw, s.OutC, 1f, w, kdim, gyb, ohw, 0f, gxb, ohw); continue; }
                float* col = (float*)buf!.Pointer;
                Gemm.Sgemm(true, false, kdim, ohw, s.OutC, 1f, w, kdim, gyb, ohw, 0f, col, ohw);
                Col2Im(s, col, gxb);
            }
        }
        finally { buf?.Release(); }
    }

    /// <summary>gw = sum over images of gy x patches^T; gbias = sum of gy over images and positions (both overwritten).</summary>
    public static void BackwardWeight(in Conv2dShape s, float* gy, float* x, float* gw, float* gbias)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW;
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        var buf = s.IsPointwise ? null : NativeBuffer.Rent((long)kdim * ohw * 4);
        try
        {
            for (int b = 0; b < s.Batch; b++)
            {
                float* gyb = gy + b * outImg, xb = x + b * inImg;
                float* src = xb;
                if (!s.IsPointwise) { src = (float*)buf!.Pointer; Im2Col(s, xb, src); }
                Gemm.Sgemm(false, true, s.OutC, kdim, ohw, 1f, gyb, ohw, src, ohw, b == 0 ? 0f : 1f, gw, kdim);
            }
        }
        finally { buf?.Release(); }
        if (gbias != null)
            for (int o = 0; o < s.OutC; o++)
            {
                float acc = 0;
                for (int b = 0; b < s.Batch; b++) acc += Blas.Sum(gy + b * outImg + (long)o * ohw, ohw);
                gbias[o] = acc;
            }
    }

    /// <summary>col[(c, ky, kx), (oy, ox)] = x[c, oy*stride + ky - padTop, ox*stride + kx - padLeft] (0 outside).</summary>
    internal static void Im2Col(in Conv2dShape s, float* x, float* col)
    {
        var g = s;
        int oh = g.OutH, ow = g.OutW;
        Par.For(g.InC, c =>
        {
            for (int ky = 0; ky < g.KH; ky++)
                for (int kx = 0; kx < g.KW; kx++)
                {
                    float* dst = col + ((long)(c * g.KH + ky) * g.KW + kx) * oh * ow;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * g.Stride + ky - g.PadTop;
                        float* d = dst + (long)oy * ow;
                        if (iy < 0 || iy >= g.H) { new Span<float>(d, ow).Clear(); continue; }
                        float* srow = x + ((long)c * g.H + iy) * g.W;
                        for (int ox = 0; ox < ow; ox++)
                        {
                            int ix = ox * g.Stride + kx - g.PadLeft;
                            d[ox] = (uint)ix < (uint)g.W ? srow[ix] : 0f;
                        }
                    }
                }
        });
    }

    /// <summary>Adjoint of Im2Col: scatters patch columns back onto the image (overwrites x).</summary>
    internal static void Col2Im(in Conv2dShape s, float* col, float* x)
    {
        var g = s;
        int oh = g.OutH, ow = g.OutW;
        Par.For(g.InC, c =>
        {
            float* xc = x + (long)c * g.H * g.W;
            new Span<float>(xc, g.H * g.W).Clear();
            for (int ky = 0; ky < g.KH; ky++)
                for (int kx = 0; kx < g.KW; kx++)
                {
                    float* src = col + ((long)(c * g.KH + ky) * g.KW + kx) * oh * ow;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * g.Stride + ky - g.PadTop;
                        if (iy < 0 || iy >= g.H) continue;
                        float* srow = src + (long)oy * ow;
                        float* xrow = xc + (long)iy * g.W;
                        for (int ox = 0; ox < ow; ox++)
                        {
                            int ix = ox * g.Stride + kx - g.PadLeft;
                            if ((uint)ix < (uint)g.W) xrow[ix] += srow[ox];
                        }
                    }
                }
        });
    }
}

/// <summary>Direct seven-loop convolution in double: the oracle for <see cref="Conv2d"/>.</summary>
public static unsafe class Conv2dReference
{
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int b = 0; b < s.Batch; b++)
            for (int o = 0; o < s.OutC; o++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double acc = bias != null ? bias[o] : 0;
                        for (int c = 0; c < s.InC; c++)
                            for (int ky = 0; ky < s.KH; ky++)
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int iy = oy * s.Stride + ky - s.PadTop, ix = ox * s.Stride + kx - s.PadLeft;
                                    if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                    acc += (double)x[((long)(b * s.InC + c) * s.H + iy) * s.W + ix] * w[((long)(o * s.InC + c) * s.KH + ky) * s.KW + kx];
                                }
                        y[((long)(b * s.OutC + o) * oh + oy) * ow + ox] = (float)acc;
                    }
    }
}
