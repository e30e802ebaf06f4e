// PNG writer for 8-bit gray / gray+alpha / RGB / RGBA images with text chunks (generation parameters), written
// through SafeFile; plus the decoded-image record and the entry points for reading (see PngReader).
using System.IO.Compression;
using System.Text;

namespace InstaFlow.IO;

/// <summary>A decoded or to-be-encoded image: 8-bit samples, row-major HWC, 1 to 4 channels (gray, gray+alpha, RGB, RGBA).</summary>
public sealed record PngImage(int Width, int Height, int Channels, byte[] Pixels, IReadOnlyDictionary<string, string> Text)
{
    public PngImage(int width, int height, int channels, byte[] pixels) : this(width, height, channels, pixels, new Dictionary<string, string>()) { }

    /// <summary>The image as RGB: gray is replicated, alpha is composited onto a white background.</summary>
    public PngImage ToRgbOnWhite() => ToRgb(compositeOnWhite: true);

    /// <summary>The image as RGB the way PIL's convert("RGB") makes it: gray is replicated, alpha is dropped.</summary>
    public PngImage ToRgbDroppingAlpha() => ToRgb(compositeOnWhite: false);

    private PngImage ToRgb(bool compositeOnWhite)
    {
        if (Channels == 3) return this;
        var rgb = new byte[checked(Width * Height * 3)];
        bool hasAlpha = Channels is 2 or 4;
        int colors = hasAlpha ? Channels - 1 : Channels;
        for (int i = 0, o = 0, s = 0; i < Width * Height; i++, s += Channels)
        {
            int a = hasAlpha && compositeOnWhite ? Pixels[s + Channels - 1] : 255;
            for (int c = 0; c < 3; c++)
            {
                int v = Pixels[s + (colors == 1 ? 0 : c)];
                // over white: v*a/255 + 255*(255-a)/255, rounded to nearest
                rgb[o++] = (byte)((v * a + 255 * (255 - a) + 127) / 255);
            }
        }
        return this with { Channels = 3, Pixels = rgb };
    }
}

public static class Png
{
    internal static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    public static PngImage Read(string path) => PngReader.Read(path);

    public static PngImage Decode(ReadOnlySpan<byte> data, string source = "<memory>") => PngReader.Decode(data, source);

    public static void Write(string path, PngImage image) =>
        Write(path, image.Width, image.Height, image.Channels, image.Pixels, image.Text);

    /// <summary>Writes through <see cref="SafeFile"/>: readers never see a partial image, devices and links are kept.</summary>
    public static void Write(string path, int width, int height, int channels, ReadOnlySpan<byte> pixels,
        IReadOnlyDictionary<string, string>? text = null)
    {
        byte[] bytes = Encode(width, height, channels, pixels, text);
        SafeFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>
    /// Encodes 8-bit HWC pixels (1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA). Text entries become tEXt chunks, or
    /// iTXt (UTF-8) when a value has characters outside Latin-1 (e.g. a prompt with emoji).
    /// </summary>
    public static byte[] Encode(int width, int height, int channels, ReadOnlySpan<byte> pixels, IReadOnlyDictionary<string, string>? text = null)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"Png.Encode: image size {width}x{height} must be positive");
        byte colorType = channels switch
        {
            1 => 0, 2 => 4, 3 => 2, 4 => 6,
            _ => throw new ArgumentException($"Png.Encode: {channels} channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)"),
        };
        long expected = (long)width * height * channels;
        if (pixels.Length != expected)
            throw new ArgumentException($"Png.Encode: {pixels.Length} bytes given for {width}x{height}x{channels} ({expected} expected)");

        var ms = new MemoryStream();
        ms.Write(Signature);
        Span<byte> ihdr = stackalloc byte[13];
        WriteBE(ihdr, (uint)width);
        WriteBE(ihdr[4..], (uint)height);
        ihdr[8] = 8;          // bit depth
        ihdr[9] = colorType;
        ihdr[10] = ihdr[11] = ihdr[12] = 0; // deflate, adaptive filtering, no interlace
        WriteChunk(ms, "IHDR", ihdr);
        if (text != null)
            foreach (var (key, value) in text) WriteTextChunk(ms, key, value);
        WriteChunk(ms, "IDAT", CompressRows(width, height, channels, pixels));
        WriteChunk(ms, "IEND", ReadOnlySpan<byte>.Empty);
        return ms.ToArray();
    }

    private static byte[] CompressRows(int width, int height, int channels, ReadOnlySpan<byte> pixels)
    {
        int stride = width * channels;
        var output = new MemoryStream();
        using (var z = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            var candidate = new byte[5][];
            for (int f = 0; f < 5; f++) candidate[f] = new byte[stride];
            var prev = new byte[stride]; // the row above the first row is all zeros
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, stride);
                // Standard heuristic: the filter whose output has the smallest sum of |signed bytes| compresses best.
                int best = 0;
                long bestScore = long.MaxValue;
                for (int f = 0; f < 5; f++)
                {
                    PngFilters.Filter(f, row, prev, channels, candidate[f]);
                    long score = 0;
                    foreach (var b in candidate[f]) score += Math.Abs((int)(sbyte)b);
                    if (score < bestScore) { bestScore = score; best = f; }
                }
                z.WriteByte((byte)best);
                z.Write(candidate[best]);
                row.CopyTo(prev);
            }
        }
        return output.ToArray();
    }

    private static void WriteTextChunk(MemoryStream ms, string key, string value)
    {
        if (key.Length is < 1 or > 79 || key.Any(c => c < 32 || c > 255) || key.StartsWith(' ') || key.EndsWith(' '))
            throw new ArgumentException($"Png: text keyword \"{key}\" must be 1-79 printable Latin-1 characters without leading/trailing spaces");
        var latin1 = Encoding.Latin1;
        if (value.All(c => c <= 255 && c != 0))
        {
            WriteChunk(ms, "tEXt", [.. latin1.GetBytes(key), 0, .. latin1.GetBytes(value)]);
            return;
        }
        // iTXt: keyword, NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, UTF-8 text.
        WriteChunk(ms, "iTXt", [.. latin1.GetBytes(key), 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(value)]);
    }

    private static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        WriteBE(head, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        s.Write(head);
        s.Write(data);
        uint crc = Crc32.Update(Crc32.Update(Crc32.Initial, head[4..]), data) ^ Crc32.Initial;
        Span<byte> tail = stackalloc byte[4];
        WriteBE(tail, crc);
        s.Write(tail);
    }

    internal static void WriteBE(Span<byte> b, uint v)
    {
        b[0] = (byte)(v >> 24); b[1] = (byte)(v >> 16); b[2] = (byte)(v >> 8); b[3] = (byte)v;
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as PNG chunk checksums use it.</summary>
internal static class Crc32
{
    public const uint Initial = 0xFFFFFFFFu;
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    /// <summary>Continues a running CRC (start from <see cref="Initial"/>, finish by xor with it).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Update(Initial, data) ^ Initial;
}

/// <summary>The five PNG scanline filters (None, Sub, Up, Average, Paeth) on whole bytes; bpp = bytes per pixel (>= 1).</summary>
internal static class PngFilters
{
    public static void Filter(int type, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, int bpp, Span<byte> dst)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
            dst[i] = (byte)(row[i] - Predict(type, a, b, c));
        }
    }

    /// <summary>Reverses a filter in place: row holds the filtered bytes and becomes the raw scanline.</summary>
    public static void Unfilter(int type, Span<byte> row, ReadOnlySpan<byte> prev, int bpp)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
            row[i] = (byte)(row[i] + Predict(type, a, b, c));
        }
    }

    private static int Predict(int type, int a, int b, int c) => type switch
    {
        0 => 0,
        1 => a,
        2 => b,
        3 => (a + b) >> 1,
        _ => Paeth(a, b, c),
    };

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
