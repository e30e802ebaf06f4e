// Max pooling over k x k windows with stride s and implicit -inf padding p, floor mode (PyTorch's MaxPool2d), on
// planes of [H, W]. The backward sends each output's gradient to the first maximum of its window in row-major order,
// the element PyTorch picks, so ties (common after ReLU) route the same way.
namespace InstaFlow.Tensors.Kernels;

public static unsafe class MaxPool
{
    public static int OutSize(int size, int kernel, int stride, int padding = 0) => (size + 2 * padding - kernel) / stride + 1;

    public static void Forward(float* x, float* y, long planes, int h, int w, int kernel, int stride, int padding = 0)
    {
        int oh = OutSize(h, kernel, stride, padding), ow = OutSize(w, kernel, stride, padding);
        Par.ForRange(planes, Math.Max(1, 8192 / ((long)oh * ow)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, yp = y + p * oh * ow;
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) yp[oy * ow + ox] = xp[ArgMax(xp, h, w, oy * stride - padding, ox * stride - padding, kernel)];
            }
        });
    }

    /// <summary>gx = 0 except at each window's first maximum, which receives that output's gradient (summed when windows overlap).</summary>
    public static void Backward(float* x, float* gy, float* gx, long planes, int h, int w, int kernel, int stride, int padding = 0)
    {
        int oh = OutSize(h, kernel, stride, padding), ow = OutSize(w, kernel, stride, padding);
        Par.ForRange(planes, Math.Max(1, 8192 / ((long)oh * ow)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, gp = gy + p * oh * ow, gxp = gx + p * h * w;
                new Span<float>(gxp, h * w).Clear();
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) gxp[ArgMax(xp, h, w, oy * stride - padding, ox * stride - padding, kernel)] += gp[oy * ow + ox];
            }
        });
    }

    // The window starts at (y0, x0), possibly in the padding; padded cells never win since padding < kernel keeps at
    // least one real cell in every window. NaN wins, as in PyTorch (val > max || isnan(val)).
    private static int ArgMax(float* xp, int h, int w, int y0, int x0, int kernel)
    {
        int ya = Math.Max(y0, 0), yb = Math.Min(y0 + kernel, h), xa = Math.Max(x0, 0), xb = Math.Min(x0 + kernel, w);
        int best = ya * w + xa;
        for (int y = ya; y < yb; y++)
            for (int xi = xa; xi < xb; xi++)
            {
                int i = y * w + xi;
                if (xp[i] > xp[best] || float.IsNaN(xp[i]) && !float.IsNaN(xp[best])) best = i;
            }
        return best;
    }
}
