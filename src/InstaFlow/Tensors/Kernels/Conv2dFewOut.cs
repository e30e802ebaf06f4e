// 3x3 stride-1 padding-1 convolution to a handful of output channels (the VAE's and UNet's conv_out: 128 -> 3 at
// 512x512, 320 -> 4 at 64x64), vectorized along the image row. The implicit GEMM fills at most 3 or 4 of a micro-tile's
// 6 rows there and packs nine patch values per input element for it; this reads each input row three times from cache.
// Its sums run in another order than the GEMM's, so these convs differ in the last bits from a machine without AVX-512.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tensors.Kernels;

internal static unsafe class Conv2dFewOut
{
    /// <summary>Most output channels this kernel takes: one accumulator pair each.</summary>
    public const int MaxOutC = 4;

    /// <summary>Whether Conv2d.Forward hands this shape here: AVX-512, 3x3, stride 1, padding 1, 1-4 output channels.</summary>
    public static bool Qualifies(in Conv2dShape s) =>
        GemmKernels.Isa == GemmIsa.Avx512 && Avx512F.IsSupported && s.OutC <= MaxOutC && Conv2dWinograd.Qualifies(s);

    /// <summary>y = conv3x3(x, w) + bias, w in its stored precision; s must satisfy <see cref="Qualifies"/>.</summary>
    public static void Forward(in Conv2dShape s, float* x, StoredData w, float* bias, float* y)
    {
        if (!Qualifies(s)) throw new ArgumentException($"Conv2dFewOut: needs AVX-512, a 3x3 kernel, stride 1, padding 1 and at most {MaxOutC} outputs; got {s}");
        // wt[(c * 9 + tap) * MaxOutC + o]: the taps of one input channel for every output side by side, widened once
        int n = s.InC * 9 * MaxOutC;
        var buf = NativeBuffer.Rent((long)n * sizeof(float));
        try
        {
            float* wt = (float*)buf.Pointer;
            new Span<float>(wt, n).Clear();
            for (int o = 0; o < s.OutC; o++)
                for (int c = 0; c < s.InC; c++)
                    for (int t = 0; t < 9; t++) wt[(c * 9 + t) * MaxOutC + o] = w[((long)o * s.InC + c) * 9 + t];
            var g = s;
            int wpad = (s.W + 15) / 16 * 16;
            // rows of every image, in chunks of at least 4 rows; each output element is summed by one thread in one order
            Par.ForRange((long)s.Batch * s.H, Math.Max(1, 4096 / s.W), (r0, r1) =>
            {
                float* acc = ThreadScratch.Get((long)MaxOutC * wpad);
                for (long r = r0; r < r1; r++) Row(g, x, wt, bias, y, (int)(r / g.H), (int)(r % g.H), acc, wpad);
            });
        }
        finally { buf.Release(); }
    }

    /// <summary>
    /// Output row oy of image b: each input row in turn is streamed once across the whole width (16 columns per
    /// vector) into the row's accumulators acc[o * wpad + column], which stay in L1. Walking the 3 x InC input rows
    /// column block by column block instead touched a new cache line at every step, and ran at a tenth of the speed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row(in Conv2dShape s, float* x, float* wt, float* bias, float* y, int b, int oy, float* acc, int wpad)
    {
        long plane = (long)s.H * s.W;
        int w = s.W;
        float* xb = x + (long)b * s.InC * plane;
        new Span<float>(acc, MaxOutC * wpad).Clear();
        float* acc1 = acc + wpad, acc2 = acc + 2 * wpad, acc3 = acc + 3 * wpad;
        var lanes = Vector512<int>.Indices;
        for (int c = 0; c < s.InC; c++)
            for (int ky = 0; ky < 3; ky++)
            {
                int iy = oy + ky - 1;
                if ((uint)iy >= (uint)s.H) continue;
                float* row = xb + c * plane + (long)iy * w;
                float* wk = wt + (c * 9 + ky * 3) * MaxOutC;
                var w0l = Vector512.Create(wk[0]); var w1l = Vector512.Create(wk[1]); var w2l = Vector512.Create(wk[2]); var w3l = Vector512.Create(wk[3]);
                var w0m = Vector512.Create(wk[4]); var w1m = Vector512.Create(wk[5]); var w2m = Vector512.Create(wk[6]); var w3m = Vector512.Create(wk[7]);
                var w0r = Vector512.Create(wk[8]); var w1r = Vector512.Create(wk[9]); var w2r = Vector512.Create(wk[10]); var w3r = Vector512.Create(wk[11]);
                for (int x0 = 0; x0 < w; x0 += 16)
                {
                    float* src = row + x0;
                    Vector512<float> vl, vm, vr;
                    if (x0 >= 1 && x0 + 17 <= w)
                    {
                        vl = Vector512.Load(src - 1); vm = Vector512.Load(src); vr = Vector512.Load(src + 1);
                    }
                    else
                    {
                        // the row's first and last column blocks: lanes whose input column falls outside read as zero
                        var left = (Vector512.GreaterThanOrEqual(lanes, Vector512.Create(1 - x0)) & Vector512.LessThan(lanes, Vector512.Create(w - x0 + 1))).AsSingle();
                        vl = Avx512F.MaskLoad(src - 1, left, Vector512<float>.Zero);
                        vm = Avx512F.MaskLoad(src, Vector512.LessThan(lanes, Vector512.Create(w - x0)).AsSingle(), Vector512<float>.Zero);
                        vr = Avx512F.MaskLoad(src + 1, Vector512.LessThan(lanes, Vector512.Create(w - x0 - 1)).AsSingle(), Vector512<float>.Zero);
                    }
                    var a0 = Vector512.Load(acc + x0); var a1 = Vector512.Load(acc1 + x0);
                    var a2 = Vector512.Load(acc2 + x0); var a3 = Vector512.Load(acc3 + x0);
                    a0 = Vector512.FusedMultiplyAdd(w0l, vl, a0); a1 = Vector512.FusedMultiplyAdd(w1l, vl, a1);
                    a2 = Vector512.FusedMultiplyAdd(w2l, vl, a2); a3 = Vector512.FusedMultiplyAdd(w3l, vl, a3);
                    a0 = Vector512.FusedMultiplyAdd(w0m, vm, a0); a1 = Vector512.FusedMultiplyAdd(w1m, vm, a1);
                    a2 = Vector512.FusedMultiplyAdd(w2m, vm, a2); a3 = Vector512.FusedMultiplyAdd(w3m, vm, a3);
                    a0 = Vector512.FusedMultiplyAdd(w0r, vr, a0); a1 = Vector512.FusedMultiplyAdd(w1r, vr, a1);
                    a2 = Vector512.FusedMultiplyAdd(w2r, vr, a2); a3 = Vector512.FusedMultiplyAdd(w3r, vr, a3);
                    a0.Store(acc + x0); a1.Store(acc1 + x0); a2.Store(acc2 + x0); a3.Store(acc3 + x0);
                }
            }
        float* yo = y + (long)b * s.OutC * plane + (long)oy * w;
        for (int o = 0; o < s.OutC; o++)
        {
            float bo = bias != null ? bias[o] : 0f;
            float* ao = acc + o * wpad, dst = yo + o * plane;
            for (int xi = 0; xi < w; xi++) dst[xi] = ao[xi] + bo;
        }
    }
}
