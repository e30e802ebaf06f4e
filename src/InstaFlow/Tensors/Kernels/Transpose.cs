// Permutation of a contiguous tensor into a new contiguous tensor (collapsing dims that stay adjacent).
namespace InstaFlow.Tensors.Kernels;

public static unsafe class Transpose
{
    public static void Permute(float* src, ReadOnlySpan<int> shape, int[] perm, float* dst)
    {
        int r = shape.Length;
        var inStrides = ShapeUtil.Strides(shape);
        var outShape = new long[r];
        var srcStride = new long[r];
        for (int i = 0; i < r; i++) { outShape[i] = shape[perm[i]]; srcStride[i] = inStrides[perm[i]]; }
        // Merge output dims that are also adjacent in the source.
        var dims = new List<long>(); var strides = new List<long>();
        for (int i = 0; i < r; i++)
        {
            if (outShape[i] == 1) continue;
            if (dims.Count > 0 && strides[^1] == srcStride[i] * outShape[i]) { dims[^1] *= outShape[i]; strides[^1] = srcStride[i]; continue; }
            dims.Add(outShape[i]); strides.Add(srcStride[i]);
        }
        long n = 1; foreach (var d in dims) n *= d;
        if (dims.Count <= 1 || n == 0) { Buffer.MemoryCopy(src, dst, n * 4, n * 4); return; }
        long inner = dims[^1], innerStride = strides[^1];
        long outer = n / inner;
        var od = dims.Take(dims.Count - 1).ToArray(); var os = strides.Take(strides.Count - 1).ToArray();
        Par.ForRange(outer, Math.Max(1, 4096 / inner), (s, e) =>
        {
            for (long o = s; o < e; o++)
            {
                long rem = o, off = 0;
                for (int i = od.Length - 1; i >= 0; i--) { off += rem % od[i] * os[i]; rem /= od[i]; }
                float* sp = src + off; float* dp = dst + o * inner;
                if (innerStride == 1) Buffer.MemoryCopy(sp, dp, inner * 4, inner * 4);
                else for (long j = 0; j < inner; j++) dp[j] = sp[j * innerStride];
            }
        });
    }
}
