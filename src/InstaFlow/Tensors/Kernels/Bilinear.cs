// Bilinear resize of [H, W] planes with align_corners=False and no antialiasing, as torch.nn.functional.interpolate
// computes it: source coordinate (dst + 0.5) * (in/out) - 0.5 clamped at 0, float weights, the row pair blended after
// each row's column pair.
namespace InstaFlow.Tensors.Kernels;

public static unsafe class Bilinear
{
    /// <summary>Per output index: the two source indices and their weights (index1 == index0 at the last source cell).</summary>
    public readonly record struct Taps(int[] Index0, int[] Index1, float[] Weight0, float[] Weight1);

    public static Taps ComputeTaps(int inSize, int outSize)
    {
        var t = new Taps(new int[outSize], new int[outSize], new float[outSize], new float[outSize]);
        float scale = (float)inSize / outSize;
        for (int i = 0; i < outSize; i++)
        {
            // the ratio is a float but (i + 0.5) promotes the coordinate and the weight to double (matches the
            // reference's output to < 4e-7 where float coordinates are off by up to 6e-6 at 64 -> 299)
            double src = Math.Max(scale * (i + 0.5) - 0.5, 0);
            int i0 = Math.Min((int)Math.Floor(src), inSize - 1);
            double lambda = Math.Clamp(src - i0, 0, 1);
            t.Index0[i] = i0;
            t.Index1[i] = i0 < inSize - 1 ? i0 + 1 : i0;
            t.Weight0[i] = (float)(1 - lambda);
            t.Weight1[i] = (float)lambda;
        }
        return t;
    }

    public static void Forward(float* x, float* y, long planes, int h, int w, int outH, int outW)
    {
        var ty = ComputeTaps(h, outH);
        var tx = ComputeTaps(w, outW);
        Par.ForRange(planes, Math.Max(1, 16384 / ((long)outH * outW)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, yp = y + p * outH * outW;
                for (int oy = 0; oy < outH; oy++)
                {
                    float* r0 = xp + ty.Index0[oy] * w, r1 = xp + ty.Index1[oy] * w, dst = yp + oy * outW;
                    float h0 = ty.Weight0[oy], h1 = ty.Weight1[oy];
                    for (int ox = 0; ox < outW; ox++)
                    {
                        int a = tx.Index0[ox], b = tx.Index1[ox];
                        float w0 = tx.Weight0[ox], w1 = tx.Weight1[ox];
                        dst[ox] = (r0[a] * w0 + r0[b] * w1) * h0 + (r1[a] * w0 + r1[b] * w1) * h1;
                    }
                }
            }
        });
    }
}
