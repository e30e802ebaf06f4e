// The one set of conversions between 8-bit HWC pixels and float CHW images: to [0, 1] (u8 / 255, torchvision's
// ToTensor and diffusers' control-image input), to [-1, 1] (u8 / 127.5 - 1, the VAE's range) and back to uint8.
using InstaFlow.Tensors;

namespace InstaFlow.IO;

public static unsafe class ImageTensors
{
    // Each byte's float, computed once with the float32 expressions the converters always used (v / 255f and
    // v / 127.5f - 1f), so a table lookup gives the same bits as the arithmetic did.
    private static readonly float[] UnitTable = Table(v => v / 255f);
    private static readonly float[] SignedTable = Table(v => v / 127.5f - 1f);

    private static float[] Table(Func<byte, float> f)
    {
        var t = new float[256];
        for (int v = 0; v < 256; v++) t[v] = f((byte)v);
        return t;
    }

    /// <summary>One HWC image (hwc.Length = H*W*channels) -> CHW floats in [0, 1] written to chw (same length).</summary>
    public static void FillChwUnit(ReadOnlySpan<byte> hwc, Span<float> chw, int channels) => FillChw(hwc, chw, channels, UnitTable);

    /// <summary>One HWC image (hwc.Length = H*W*channels) -> CHW floats in [-1, 1] written to chw (same length).</summary>
    public static void FillChwSigned(ReadOnlySpan<byte> hwc, Span<float> chw, int channels) => FillChw(hwc, chw, channels, SignedTable);

    /// <summary>HWC bytes of one width x height image -> CHW floats in [0, 1] (u8 / 255).</summary>
    public static float[] ToChwUnit(ReadOnlySpan<byte> hwc, int width, int height, int channels = 3)
    {
        var chw = new float[CheckedLength(hwc, 1, width, height, channels)];
        FillChw(hwc, chw, channels, UnitTable);
        return chw;
    }

    /// <summary>HWC bytes of one width x height image -> CHW floats in [-1, 1] (u8 / 127.5 - 1).</summary>
    public static float[] ToChwSigned(ReadOnlySpan<byte> hwc, int width, int height, int channels = 3)
    {
        var chw = new float[CheckedLength(hwc, 1, width, height, channels)];
        FillChw(hwc, chw, channels, SignedTable);
        return chw;
    }

    /// <summary>count HWC images stored back to back -> [count, channels, height, width] in [0, 1].</summary>
    public static Tensor ToTensorUnit(ReadOnlySpan<byte> hwc, int count, int width, int height, int channels = 3) =>
        ToTensor(hwc, count, width, height, channels, UnitTable);

    /// <summary>count HWC images stored back to back -> [count, channels, height, width] in [-1, 1].</summary>
    public static Tensor ToTensorSigned(ReadOnlySpan<byte> hwc, int count, int width, int height, int channels = 3) =>
        ToTensor(hwc, count, width, height, channels, SignedTable);

    /// <summary>Equal-size HWC images (e.g. a pipeline's output) -> [images.Count, channels, height, width] in [-1, 1].</summary>
    public static Tensor ToTensorSigned(IReadOnlyList<byte[]> images, int width, int height, int channels = 3)
    {
        int size = width * height * channels;
        var t = Tensor.Empty(images.Count, channels, height, width);
        var s = t.Span;
        for (int i = 0; i < images.Count; i++)
        {
            if (images[i].Length != size) throw new ArgumentException($"image {i} holds {images[i].Length} bytes, expected {width}x{height}x{channels}");
            FillChw(images[i], s.Slice(i * size, size), channels, SignedTable);
        }
        return t;
    }

    /// <summary>x: [B, C, H, W] in [-1, 1] -> per image H*W*C bytes: round(clamp(x/2 + 0.5, 0, 1) * 255), half to even, in float32.</summary>
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
                        // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1), then numpy's (x * 255).round(), which rounds halves to even.
                        float v = p[(((long)i * c + ch) * h + y) * w + xx] / 2f + 0.5f;
                        v = Math.Clamp(v, 0f, 1f);
                        img[(y * w + xx) * c + ch] = (byte)MathF.Round(v * 255f, MidpointRounding.ToEven);
                    }
            r[i] = img;
        }
        return r;
    }

    private static Tensor ToTensor(ReadOnlySpan<byte> hwc, int count, int width, int height, int channels, float[] table)
    {
        int size = CheckedLength(hwc, count, width, height, channels) / Math.Max(count, 1);
        var t = Tensor.Empty(count, channels, height, width);
        var s = t.Span;
        for (int i = 0; i < count; i++) FillChw(hwc.Slice(i * size, size), s.Slice(i * size, size), channels, table);
        return t;
    }

    private static void FillChw(ReadOnlySpan<byte> hwc, Span<float> chw, int channels, float[] table)
    {
        if (channels < 1 || hwc.Length % channels != 0) throw new ArgumentException($"{hwc.Length} bytes do not form an image of {channels} channels");
        if (chw.Length != hwc.Length) throw new ArgumentException($"{hwc.Length} pixel bytes for {chw.Length} floats");
        int plane = hwc.Length / channels;
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < channels; c++) chw[c * plane + p] = table[hwc[p * channels + c]];
    }

    private static int CheckedLength(ReadOnlySpan<byte> hwc, int count, int width, int height, int channels)
    {
        long n = (long)count * width * height * channels;
        if (count < 0 || width < 0 || height < 0 || channels < 1 || hwc.Length != n)
            throw new ArgumentException($"{hwc.Length} bytes are not {count} images of {width}x{height}x{channels}");
        return (int)n;
    }
}
