// Average pooling over k x k windows with stride s and zero padding p, floor mode, on planes of [H, W]. With
// countIncludePad false a border window divides by its in-image cells only (TensorFlow's "SAME" average pool, which
// the FID Inception uses), otherwise always by k*k. Sums run in float in row-major window order, as PyTorch's CPU kernel.
namespace InstaFlow.Tensors.Kernels;

public static unsafe class AvgPool
{
    public static void Forward(float* x, float* y, long planes, int h, int w, int kernel, int stride, int padding, bool countIncludePad)
    {
        int oh = MaxPool.OutSize(h, kernel, stride, padding), ow = MaxPool.OutSize(w, kernel, stride, padding);
        Par.ForRange(planes, Math.Max(1, 8192 / ((long)oh * ow)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                float* xp = x + p * h * w, yp = y + p * oh * ow;
                for (int oy = 0; oy < oh; oy++)
                {
                    int y0 = oy * stride - padding;
                    // PyTorch clips the padded window to the padded image before counting, then to the image before summing
                    int y1 = Math.Min(y0 + kernel, h + padding), ya = Math.Max(y0, 0), yb = Math.Min(y1, h);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int x0 = ox * stride - padding;
                        int x1 = Math.Min(x0 + kernel, w + padding), xa = Math.Max(x0, 0), xb = Math.Min(x1, w);
                        float sum = 0;
                        for (int yy = ya; yy < yb; yy++)
                            for (int xx = xa; xx < xb; xx++) sum += xp[yy * w + xx];
                        int count = countIncludePad ? (y1 - y0) * (x1 - x0) : (yb - ya) * (xb - xa);
                        yp[oy * ow + ox] = sum / count;
                    }
                }
            }
        });
    }
}
