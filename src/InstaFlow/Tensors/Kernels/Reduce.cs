// Reduction kernels. Each output element is reduced by one thread in a fixed order (thread-count independent).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

public static unsafe class Reduce
{
    /// <summary>y[o, i] = scale * sum_k x[o, k, i].</summary>
    public static void SumDim(float* x, long outer, int size, long inner, float* y, float scale)
    {
        if (inner == 1)
        {
            Par.ForRange(outer, Math.Max(1, 16384 / Math.Max(1, size)), (s, e) =>
            {
                for (long o = s; o < e; o++) y[o] = Blas.Sum(x + o * size, size) * scale;
            });
            return;
        }
        // Column blocks as well as outer slices: a Linear's bias gradient sums [rows, features] down its rows with
        // outer 1, which ran on one thread (8192 x 512 floats at the Twemoji UNet's training shapes). Each output
        // element still adds its rows in order, so the bits do not change.
        long block = Math.Max(16, (inner / 8 + 15) / 16 * 16);
        long blocks = (inner + block - 1) / block;
        Par.ForRange(outer * blocks, Math.Max(1, 16384 / Math.Max(1, size * block)), (s, e) =>
        {
            for (long q = s; q < e; q++)
            {
                long o = q / blocks, c0 = q % blocks * block;
                int n = (int)Math.Min(block, inner - c0);
                float* yo = y + o * inner + c0;
                new Span<float>(yo, n).Clear();
                for (int k = 0; k < size; k++) Blas.Axpy(1f, x + (o * size + k) * inner + c0, yo, n);
                if (scale != 1f) Blas.Scale(scale, yo, n);
            }
        });
    }

    /// <summary>Two-pass variance (mean first) in double accumulators: stable for large offsets.</summary>
    public static void VarDim(float* x, long outer, int size, long inner, float* y, int correction)
    {
        Par.ForRange(outer * inner, 256, (s, e) =>
        {
            for (long q = s; q < e; q++)
            {
                long o = q / inner, i = q % inner;
                float* b = x + o * size * inner + i;
                double m = 0;
                for (int k = 0; k < size; k++) m += b[k * inner];
                m /= size;
                double v = 0;
                for (int k = 0; k < size; k++) { double dlt = b[k * inner] - m; v += dlt * dlt; }
                y[q] = (float)(v / (size - correction));
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SoftmaxRow(float* x, float* y, int n)
    {
        float max = float.NegativeInfinity;
        int i = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.Load(x + i));
            max = Vector512.Max(m, m).ToScalar();
            for (int l = 0; l < 16; l++) max = MathF.Max(max, m.GetElement(l));
        }
        for (; i < n; i++) max = MathF.Max(max, x[i]);
        if (float.IsNegativeInfinity(max)) { new Span<float>(y, n).Fill(float.NaN); return; }
        i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var mv = Vector512.Create(max);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var e = Vector512.Exp(Vector512.Load(x + i) - mv);
                Vector512.Store(e, y + i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        for (; i < n; i++) { float e = MathF.Exp(x[i] - max); y[i] = e; sum += e; }
        Blas.Scale(1f / sum, y, n);
    }
}
