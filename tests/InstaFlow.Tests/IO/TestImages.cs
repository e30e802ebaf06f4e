// Encoded test images made in memory from seeded patterns: JPEG and WebP through SkiaSharp's encoders, BMP and GIF
// by small writers here (Skia encodes neither), so decoder tests need no committed binary files.
using SkiaSharp;

namespace InstaFlow.Tests.IO;

public static class TestImages
{
    /// <summary>Seeded random RGB bytes (HWC).</summary>
    public static byte[] RandomRgb(int seed, int width, int height)
    {
        var rgb = new byte[width * height * 3];
        new Random(seed).NextBytes(rgb);
        return rgb;
    }

    /// <summary>A smooth seeded pattern (gradients plus a seeded colour offset) that JPEG keeps close to the original.</summary>
    public static byte[] SmoothRgb(int seed, int width, int height)
    {
        var rng = new Random(seed);
        int or = rng.Next(64), og = rng.Next(64), ob = rng.Next(64);
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int o = (y * width + x) * 3;
                rgb[o] = (byte)(or + x * 160 / width);
                rgb[o + 1] = (byte)(og + y * 160 / height);
                rgb[o + 2] = (byte)(ob + (x + y) * 80 / (width + height));
            }
        return rgb;
    }

    public static byte[] Jpeg(byte[] rgb, int width, int height, int quality = 95) =>
        Encode(ToRgba(rgb), width, height, p => p.Encode(SKEncodedImageFormat.Jpeg, quality));

    /// <summary>Lossless WebP of RGBA bytes (alpha kept as given, not premultiplied).</summary>
    public static byte[] WebpLossless(byte[] rgba, int width, int height) =>
        Encode(rgba, width, height, p => p.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100)));

    public static byte[] ToRgba(byte[] rgb, byte alpha = 255)
    {
        var rgba = new byte[rgb.Length / 3 * 4];
        for (int i = 0, o = 0; i < rgb.Length; i += 3, o += 4)
        {
            rgba[o] = rgb[i]; rgba[o + 1] = rgb[i + 1]; rgba[o + 2] = rgb[i + 2]; rgba[o + 3] = alpha;
        }
        return rgba;
    }

    private static unsafe byte[] Encode(byte[] rgba, int width, int height, Func<SKPixmap, SKData?> encode)
    {
        fixed (byte* p = rgba)
        {
            using var pixmap = new SKPixmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul), (IntPtr)p);
            using var data = encode(pixmap) ?? throw new InvalidOperationException("SkiaSharp could not encode the test image");
            return data.ToArray();
        }
    }

    /// <summary>An uncompressed 24-bit BMP: BITMAPINFOHEADER, bottom-up BGR rows padded to 4 bytes.</summary>
    public static byte[] Bmp(byte[] rgb, int width, int height)
    {
        int stride = (width * 3 + 3) & ~3, size = 54 + stride * height;
        var b = new byte[size];
        "BM"u8.CopyTo(b);
        BitConverter.TryWriteBytes(b.AsSpan(2), size);
        BitConverter.TryWriteBytes(b.AsSpan(10), 54);
        BitConverter.TryWriteBytes(b.AsSpan(14), 40);
        BitConverter.TryWriteBytes(b.AsSpan(18), width);
        BitConverter.TryWriteBytes(b.AsSpan(22), height);
        BitConverter.TryWriteBytes(b.AsSpan(26), (short)1);
        BitConverter.TryWriteBytes(b.AsSpan(28), (short)24);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int s = (y * width + x) * 3, d = 54 + (height - 1 - y) * stride + x * 3;
                b[d] = rgb[s + 2]; b[d + 1] = rgb[s + 1]; b[d + 2] = rgb[s];
            }
        return b;
    }

    /// <summary>
    /// A single-frame GIF of palette indices (a 4-colour palette). The LZW stream sends a clear code before every
    /// pixel, so the code table never grows and every code is 3 bits: valid, if not compact.
    /// </summary>
    public static byte[] Gif(byte[] indices, int width, int height, byte[] palette4Rgb)
    {
        var o = new List<byte>();
        o.AddRange("GIF89a"u8.ToArray());
        o.AddRange([(byte)width, (byte)(width >> 8), (byte)height, (byte)(height >> 8), 0xF1, 0, 0]); // global table of 4 colours
        o.AddRange(palette4Rgb);
        o.AddRange([0x2C, 0, 0, 0, 0, (byte)width, (byte)(width >> 8), (byte)height, (byte)(height >> 8), 0]);
        const int minCodeSize = 2, clear = 4, end = 5;
        var codes = indices.SelectMany(i => new[] { clear, (int)i }).Append(end).ToArray();
        var lzw = new List<byte>();
        int acc = 0, bits = 0;
        foreach (var c in codes)
        {
            acc |= c << bits; bits += 3;
            while (bits >= 8) { lzw.Add((byte)acc); acc >>= 8; bits -= 8; }
        }
        if (bits > 0) lzw.Add((byte)acc);
        o.Add(minCodeSize);
        for (int i = 0; i < lzw.Count; i += 255)
        {
            int n = Math.Min(255, lzw.Count - i);
            o.Add((byte)n);
            o.AddRange(lzw.GetRange(i, n));
        }
        o.Add(0);
        o.Add(0x3B);
        return o.ToArray();
    }
}
