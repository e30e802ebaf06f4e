// Pillow's resampling of 8-bit images (Image.resize, Pillow 9.x ImagingResample), reproduced exactly: separable
// passes (horizontal first), filter support widened by the scale when shrinking (antialiasing), weights normalized
// per output pixel and quantized to 22 fractional bits, each pass rounded and clamped to uint8. CLIP's preprocessing
// depends on these exact bytes.
namespace InstaFlow.IO;

public static class PilResize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Pillow's BICUBIC kernel (a = -0.5) with support 2.</summary>
    public static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Resizes an HWC uint8 image with `channels` bands to outW x outH with Pillow's bicubic filter.</summary>
    public static byte[] Bicubic(byte[] hwc, int width, int height, int channels, int outW, int outH)
    {
        if (hwc.Length != width * height * channels) throw new ArgumentException($"image of {hwc.Length} bytes is not {width}x{height}x{channels}");
        if (outW < 1 || outH < 1) throw new InvalidInputException($"cannot resize to {outW}x{outH}");
        var (vBounds, vK, vSize) = Coefficients(height, outH);
        int first = vBounds[0], last = vBounds[2 * (outH - 1)] + vBounds[2 * (outH - 1) + 1];
        byte[] src = hwc;
        int srcW = width, rowOffset = 0;
        if (outW != width)
        {
            // only the source rows the vertical pass reads, as Pillow does (the result is the same either way)
            var (hBounds, hK, hSize) = Coefficients(width, outW);
            int rows = last - first;
            var tmp = new byte[rows * outW * channels];
            for (int y = 0; y < rows; y++)
                for (int x = 0; x < outW; x++)
                    for (int c = 0; c < channels; c++)
                    {
                        int acc = 1 << (PrecisionBits - 1);
                        int xmin = hBounds[2 * x], n = hBounds[2 * x + 1];
                        for (int i = 0; i < n; i++) acc += hwc[((y + first) * width + xmin + i) * channels + c] * hK[x * hSize + i];
                        tmp[(y * outW + x) * channels + c] = Clip8(acc);
                    }
            src = tmp; srcW = outW; rowOffset = first;
        }
        if (outH == height && outW != width) return src;
        if (outH == height) return (byte[])hwc.Clone();
        var dst = new byte[outH * outW * channels];
        for (int y = 0; y < outH; y++)
        {
            int ymin = vBounds[2 * y] - rowOffset, n = vBounds[2 * y + 1];
            for (int x = 0; x < outW; x++)
                for (int c = 0; c < channels; c++)
                {
                    int acc = 1 << (PrecisionBits - 1);
                    for (int i = 0; i < n; i++) acc += src[((ymin + i) * srcW + x) * channels + c] * vK[y * vSize + i];
                    dst[(y * outW + x) * channels + c] = Clip8(acc);
                }
        }
        return dst;
    }

    private static byte Clip8(int acc) => (byte)Math.Clamp(acc >> PrecisionBits, 0, 255);

    /// <summary>Per output pixel: (first input index, count) and fixed-point weights, ksize per pixel.</summary>
    private static (int[] Bounds, int[] Weights, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize, filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[2 * outSize];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale, ww = 0, ss = 1.0 / filterScale;
            // (int) truncates toward zero, as C's cast does
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            for (int x = 0; x < xmax; x++) { k[x] = Bicubic((x + xmin - center + 0.5) * ss); ww += k[x]; }
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                weights[xx * ksize + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return (bounds, weights, ksize);
    }
}
