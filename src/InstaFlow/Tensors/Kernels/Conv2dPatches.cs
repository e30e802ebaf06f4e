// Implicit-GEMM B operand for conv2d: packs image patches straight into NR-column panels (rows = (c, ky, kx),
// columns = output positions), zero padding decided while packing, so no im2col matrix is ever built.
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
