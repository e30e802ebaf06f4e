// Max pooling over k x k windows with stride s, no padding, floor mode (PyTorch's MaxPool2d defaults), on planes of
// [H, W]. The backward sends each output's gradient to the first maximum of its window in row-major order, the
// element PyTorch picks, so ties (common after ReLU) route the same way.
namespace InstaFlow.Tensors.Kernels;

public static unsafe class MaxPool
{
    public static int OutSize(int size, int kernel, int stride) => (size - kernel) / stride + 1;

    public static void Forward(float* x, float* y, long planes, int h, int w, int kernel, int stride)
    {
        int oh = OutSize(h, kernel, stride), ow = OutSize(w, kernel, stride);
        Par.ForRange(planes, Math.Max(1, 8192 / ((long)oh * ow)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, yp = y + p * oh * ow;
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) yp[oy * ow + ox] = xp[ArgMax(xp, w, oy * stride, ox * stride, kernel)];
            }
        });
    }

    /// <summary>gx = 0 except at each window's first maximum, which receives that output's gradient (summed when windows overlap).</summary>
    public static void Backward(float* x, float* gy, float* gx, long planes, int h, int w, int kernel, int stride)
    {
        int oh = OutSize(h, kernel, stride), ow = OutSize(w, kernel, stride);
        Par.ForRange(planes, Math.Max(1, 8192 / ((long)oh * ow)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, gp = gy + p * oh * ow, gxp = gx + p * h * w;
                new Span<float>(gxp, h * w).Clear();
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) gxp[ArgMax(xp, w, oy * stride, ox * stride, kernel)] += gp[oy * ow + ox];
            }
        });
    }

    // NaN wins, as in PyTorch (val > max || isnan(val)).
    private static int ArgMax(float* xp, int w, int y0, int x0, int kernel)
    {
        int best = y0 * w + x0;
        for (int dy = 0; dy < kernel; dy++)
            for (int dx = 0; dx < kernel; dx++)
            {
                int i = (y0 + dy) * w + x0 + dx;
                if (xp[i] > xp[best] || float.IsNaN(xp[i]) && !float.IsNaN(xp[best])) best = i;
            }
        return best;
    }
}
