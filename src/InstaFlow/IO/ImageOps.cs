// Conversions between the VAE's float images ([-1, 1], NCHW) and 8-bit HWC pixels.
using InstaFlow.Tensors;

namespace InstaFlow.IO;

public static unsafe class ImageOps
{
    /// <summary>x: [B, 3, H, W] -> per image H*W*3 bytes: round(clamp(x/2 + 0.5, 0, 1) * 255), half to even, in float32.</summary>
    public static byte[][] ToUint8Hwc(Tensor x)
    {
        ShapeUtil.RequireRank(x, 4, "ToUint8Hwc");
        int b = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        var r = new byte[b][];
        float* p = x.Data;
        for (int i = 0; i < b; i++)
        {
            var img = new byte[h * w * c];
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int xx = 0; xx < w; xx++)
                    {
                        float v = p[(((long)i * c + ch) * h + y) * w + xx] / 2f + 0.5f;
                        v = Math.Clamp(v, 0f, 1f);
                        img[(y * w + xx) * c + ch] = (byte)MathF.Round(v * 255f, MidpointRounding.ToEven);
                    }
            r[i] = img;
        }
        return r;
    }

    /// <summary>HWC bytes -> [1, C, H, W] floats in [-1, 1] (the VAE encoder's input range).</summary>
    public static Tensor FromUint8Hwc(byte[] pixels, int width, int height, int channels)
    {
        if (pixels.Length != width * height * channels) throw new ArgumentException($"{pixels.Length} bytes do not form a {width}x{height}x{channels} image");
        var t = Tensor.Empty(1, channels, height, width);
        float* p = t.Data;
        for (int ch = 0; ch < channels; ch++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    p[((long)ch * height + y) * width + x] = pixels[(y * width + x) * channels + ch] / 127.5f - 1f;
        return t;
    }
}
