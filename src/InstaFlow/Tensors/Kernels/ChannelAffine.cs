// y = x * scale[c] + shift[c] per channel of [B, C, spatial] (inference BatchNorm folded to per-channel terms), with an
// optional ReLU; Vector256 body, scalar tail with the same formula.
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class ChannelAffine
{
    public static void Forward(float* x, float* y, int batch, int channels, long spatial, float* scale, float* shift, bool relu)
    {
        Par.ForRange((long)batch * channels, Math.Max(1, 16384 / spatial), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                int c = (int)(p % channels);
                float a = scale[c], b = shift[c];
                float* xp = x + p * spatial, yp = y + p * spatial;
                var va = Vector256.Create(a); var vb = Vector256.Create(b);
                long i = 0;
                for (; i + 8 <= spatial; i += 8)
                {
                    var v = Vector256.Load(xp + i) * va + vb;
                    (relu ? Vector256.Max(v, Vector256<float>.Zero) : v).Store(yp + i);
                }
                for (; i < spatial; i++)
                {
                    float v = xp[i] * a + b;
                    yp[i] = relu ? Math.Max(v, 0f) : v;
                }
            }
        });
    }
}
