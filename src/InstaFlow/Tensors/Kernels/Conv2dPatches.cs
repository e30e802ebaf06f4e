// Implicit-GEMM B operands for conv2d: image patches packed straight into NR-column panels, zero padding decided
// while packing, so no im2col matrix is ever built. Forward uses patches; the weight gradient uses them transposed.
using System.Runtime.CompilerServices;

namespace InstaFlow.Tensors.Kernels;

internal readonly unsafe struct Conv2dPatches(Conv2dShape s, float* image) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        int ow = s.OutW, khw = s.KH * s.KW;
        int c = k0 / khw, ky = k0 % khw / s.KW, kx = k0 % s.KW;
        int oy = j0 / ow, ox0 = j0 % ow;
        bool oneRow = ox0 + cols <= ow;
        int* rowOf = stackalloc int[NR], colOf = stackalloc int[NR];
        if (!oneRow)
            for (int t = 0; t < cols; t++)
            {
                rowOf[t] = (j0 + t) / ow * s.Stride - s.PadTop;
                colOf[t] = (j0 + t) % ow * s.Stride - s.PadLeft;
            }
        for (int p = 0; p < kc; p++)
        {
            float* d = dst + p * NR;
            float* plane = image + (long)c * s.H * s.W;
            if (oneRow) PackRow(plane, oy * s.Stride + ky - s.PadTop, ox0 * s.Stride + kx - s.PadLeft, cols, d);
            else
            {
                for (int t = 0; t < cols; t++)
                {
                    int iy = rowOf[t] + ky, ix = colOf[t] + kx;
                    d[t] = (uint)iy < (uint)s.H && (uint)ix < (uint)s.W ? plane[(long)iy * s.W + ix] : 0f;
                }
                for (int t = cols; t < NR; t++) d[t] = 0f;
            }
            if (++kx == s.KW)
            {
                kx = 0;
                if (++ky == s.KH) { ky = 0; c++; }
            }
        }
        return dst;
    }

    /// <summary>One panel row whose output positions share an image row: a straight copy away from the borders.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PackRow(float* plane, int iy, int ix0, int cols, float* d)
    {
        const int NR = GemmKernels.NR;
        if ((uint)iy >= (uint)s.H) { new Span<float>(d, NR).Clear(); return; }
        float* src = plane + (long)iy * s.W;
        if (s.Stride == 1)
        {
            if (cols == NR && ix0 >= 0 && ix0 + NR <= s.W)
            {
                Unsafe.CopyBlockUnaligned(d, src + ix0, NR * sizeof(float));
                return;
            }
            // Near a border: the in-image part is still one contiguous run.
            int lo = Math.Clamp(-ix0, 0, cols), hi = Math.Clamp(s.W - ix0, lo, cols);
            new Span<float>(d, lo).Clear();
            Unsafe.CopyBlockUnaligned(d + lo, src + ix0 + lo, (uint)(hi - lo) * sizeof(float));
            new Span<float>(d + hi, NR - hi).Clear();
            return;
        }
        for (int t = 0; t < NR; t++)
        {
            int ix = ix0 + t * s.Stride;
            d[t] = t < cols && (uint)ix < (uint)s.W ? src[ix] : 0f;
        }
    }
}

/// <summary>Patches transposed, for the weight gradient: rows = output positions, columns = (c, ky, kx).</summary>
internal readonly unsafe struct Conv2dPatchesTransposed(Conv2dShape s, float* image) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        int khw = s.KH * s.KW, ow = s.OutW;
        long* plane = stackalloc long[NR];
        int* dy = stackalloc int[NR], dx = stackalloc int[NR];
        for (int j = 0; j < cols; j++)
        {
            int kidx = j0 + j;
            plane[j] = (long)(kidx / khw) * s.H * s.W;
            dy[j] = kidx % khw / s.KW - s.PadTop;
            dx[j] = kidx % s.KW - s.PadLeft;
        }
        int oy = k0 / ow, ox = k0 % ow;
        for (int p = 0; p < kc; p++)
        {
            float* d = dst + p * NR;
            int y0 = oy * s.Stride, x0 = ox * s.Stride;
            for (int j = 0; j < cols; j++)
            {
                int iy = y0 + dy[j], ix = x0 + dx[j];
                d[j] = (uint)iy < (uint)s.H && (uint)ix < (uint)s.W ? image[plane[j] + (long)iy * s.W + ix] : 0f;
            }
            for (int j = cols; j < NR; j++) d[j] = 0f;
            if (++ox == ow) { ox = 0; oy++; }
        }
        return dst;
    }
}
