// PNG decoder to 8-bit samples: every colour type and bit depth of the spec, palettes with tRNS transparency,
// all five filters, text chunks; corrupt files give one-line InvalidInputExceptions naming the file.
using System.IO.Compression;
using System.Text;

namespace InstaFlow.IO;

public static class PngReader
{
    /// <summary>Refuse images whose decoded size would exceed this many bytes (a corrupt header, not a real image).</summary>
    public const long MaxDecodedBytes = 1L << 30;

    /// <summary>Reads and decodes a PNG; with limits, images larger than they allow are refused before any decoding.</summary>
    public static PngImage Read(string path, ImageLimits? limits = null)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"PNG file not found: {path}", path);
        return Decode(File.ReadAllBytes(path), path, limits);
    }

    private sealed class Header
    {
        public int Width, Height, BitDepth, ColorType;
        public int SamplesPerPixel => ColorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        public int BitsPerPixel => SamplesPerPixel * BitDepth;
        public long Stride => ((long)Width * BitsPerPixel + 7) / 8;
    }

    public static PngImage Decode(ReadOnlySpan<byte> data, string source, ImageLimits? limits = null)
    {
        // Text limits hold even for callers without size limits: text is inflated while the chunks are read.
        var textLimits = limits ?? ImageLimits.Default;
        long textBudget = textLimits.MaxTextBytes;
        if (data.Length < 8 || !data[..8].SequenceEqual(Png.Signature))
            throw Bad(source, "not a PNG file (missing the 8-byte PNG signature)");

        Header? h = null;
        byte[]? palette = null;
        byte[]? paletteAlpha = null;
        int[]? transparentKey = null; // gray or RGB sample values (full bit depth) that mean "fully transparent"
        var idat = new MemoryStream();
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        bool sawEnd = false;
        int pos = 8;
        while (!sawEnd)
        {
            if (pos + 8 > data.Length) throw Bad(source, $"truncated: file ends at byte {data.Length} before the IEND chunk");
            uint len = ReadBE(data[pos..]);
            string type = Encoding.ASCII.GetString(data.Slice(pos + 4, 4));
            if (len > int.MaxValue || pos + 12L + len > data.Length)
                throw Bad(source, $"truncated: chunk {type} at byte {pos} declares {len} bytes but the file ends at byte {data.Length}");
            var body = data.Slice(pos + 8, (int)len);
            uint stored = ReadBE(data[(pos + 8 + (int)len)..]);
            if (Crc32.Compute(data.Slice(pos + 4, 4 + (int)len)) != stored)
                throw Bad(source, $"CRC mismatch in chunk {type} at byte {pos} (file is corrupt)");
            pos += 12 + (int)len;

            if (h == null && type != "IHDR") throw Bad(source, $"first chunk is {type}, expected IHDR");
            switch (type)
            {
                case "IHDR":
                    if (h != null) throw Bad(source, "more than one IHDR chunk");
                    h = ParseHeader(source, body, limits);
                    break;
                case "PLTE":
                    if (len % 3 != 0 || len == 0 || len > 768) throw Bad(source, $"PLTE chunk has {len} bytes (must be 3..768, a multiple of 3)");
                    palette = body.ToArray();
                    break;
                case "tRNS":
                    if (h!.ColorType == 3) paletteAlpha = body.ToArray();
                    else if (h.ColorType == 0 && len == 2) transparentKey = [ReadBE16(body)];
                    else if (h.ColorType == 2 && len == 6) transparentKey = [ReadBE16(body), ReadBE16(body[2..]), ReadBE16(body[4..])];
                    else throw Bad(source, $"tRNS chunk of {len} bytes is invalid for colour type {h.ColorType}");
                    break;
                case "IDAT":
                    idat.Write(body);
                    break;
                case "IEND":
                    sawEnd = true;
                    break;
                case "tEXt":
                case "zTXt":
                case "iTXt":
                    ReadText(source, type, body, text, textLimits.MaxTextChunkBytes, ref textBudget);
                    break;
                default:
                    // Bit 5 of the first letter: lowercase = ancillary (safe to skip), uppercase = critical.
                    if ((type[0] & 0x20) == 0) throw Bad(source, $"unknown critical chunk {type}; cannot decode");
                    break;
            }
        }

        if (h!.ColorType == 3 && palette == null) throw Bad(source, "palette image without a PLTE chunk");
        if (idat.Length == 0) throw Bad(source, "no IDAT image data");
        byte[] raw = Inflate(source, idat, h);
        return ToImage(h, raw, palette, paletteAlpha, transparentKey, text, source);
    }

    private static Header ParseHeader(string source, ReadOnlySpan<byte> b, ImageLimits? limits)
    {
        if (b.Length != 13) throw Bad(source, $"IHDR has {b.Length} bytes, expected 13");
        var h = new Header { Width = (int)Math.Min(ReadBE(b), int.MaxValue), Height = (int)Math.Min(ReadBE(b[4..]), int.MaxValue), BitDepth = b[8], ColorType = b[9] };
        if (h.Width == 0 || h.Height == 0) throw Bad(source, $"image size {h.Width}x{h.Height} is empty");
        // The caller's limits come first: the header is all that has been looked at, nothing is inflated yet.
        limits?.Check(source, h.Width, h.Height);
        bool okDepth = h.ColorType switch
        {
            0 => h.BitDepth is 1 or 2 or 4 or 8 or 16,
            3 => h.BitDepth is 1 or 2 or 4 or 8,
            2 or 4 or 6 => h.BitDepth is 8 or 16,
            _ => throw Bad(source, $"invalid colour type {h.ColorType}"),
        };
        if (!okDepth) throw Bad(source, $"bit depth {h.BitDepth} is invalid for colour type {h.ColorType}");
        if (b[10] != 0 || b[11] != 0) throw Bad(source, $"unknown compression method {b[10]} or filter method {b[11]}");
        if (b[12] == 1)
            throw new NotSupportedException($"{source}: Adam7-interlaced PNGs are not supported; re-save the image without interlacing");
        if (b[12] != 0) throw Bad(source, $"unknown interlace method {b[12]}");
        if ((h.Stride + 1) * h.Height > MaxDecodedBytes || (long)h.Width * h.Height * 4 > MaxDecodedBytes)
            throw Bad(source, $"image size {h.Width}x{h.Height} is too large to decode");
        return h;
    }

    private static byte[] Inflate(string source, MemoryStream idat, Header h)
    {
        long need = (h.Stride + 1) * h.Height;
        var raw = new byte[need];
        idat.Position = 0;
        int got = 0;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            while (got < need)
            {
                int n = z.Read(raw, got, (int)(need - got));
                if (n == 0) break;
                got += n;
            }
        }
        catch (InvalidDataException e)
        {
            throw Bad(source, "corrupt compressed image data: " + e.Message.Replace('\n', ' '));
        }
        if (got < need) throw Bad(source, $"truncated image data: {got} of {need} decompressed bytes");
        return raw;
    }

    private static PngImage ToImage(Header h, byte[] raw, byte[]? palette, byte[]? paletteAlpha, int[]? key,
        Dictionary<string, string> text, string source)
    {
        int stride = (int)h.Stride;
        int bpp = Math.Max(1, h.BitsPerPixel / 8);
        // A tRNS chunk adds an alpha channel: gray -> gray+alpha, RGB and palette -> RGBA.
        int outChannels = h.ColorType switch
        {
            0 => key != null ? 2 : 1,
            2 => key != null ? 4 : 3,
            3 => paletteAlpha != null ? 4 : 3,
            4 => 2,
            _ => 4,
        };
        var pixels = new byte[(long)h.Width * h.Height * outChannels];
        var samples = new int[h.Width * h.SamplesPerPixel];
        var prev = new byte[stride];
        int maxSample = (1 << h.BitDepth) - 1;

        for (int y = 0; y < h.Height; y++)
        {
            int rowStart = y * (stride + 1);
            int filter = raw[rowStart];
            if (filter > 4) throw Bad(source, $"row {y} has unknown filter type {filter}");
            var row = raw.AsSpan(rowStart + 1, stride);
            PngFilters.Unfilter(filter, row, prev, bpp);
            row.CopyTo(prev);
            UnpackSamples(row, h.BitDepth, samples);

            int o = y * h.Width * outChannels;
            for (int x = 0; x < h.Width; x++)
            {
                int s = x * h.SamplesPerPixel;
                if (h.ColorType == 3)
                {
                    int idx = samples[s];
                    if (idx * 3 + 2 >= palette!.Length) throw Bad(source, $"pixel ({x},{y}) uses palette index {idx} but PLTE has {palette.Length / 3} entries");
                    pixels[o++] = palette[idx * 3];
                    pixels[o++] = palette[idx * 3 + 1];
                    pixels[o++] = palette[idx * 3 + 2];
                    if (paletteAlpha != null) pixels[o++] = idx < paletteAlpha.Length ? paletteAlpha[idx] : (byte)255;
                    continue;
                }
                for (int c = 0; c < h.SamplesPerPixel; c++) pixels[o++] = To8Bit(samples[s + c], h.BitDepth, maxSample);
                if (key != null)
                {
                    bool transparent = true;
                    for (int c = 0; c < key.Length; c++) transparent &= samples[s + c] == key[c];
                    pixels[o++] = transparent ? (byte)0 : (byte)255;
                }
            }
        }
        return new PngImage(h.Width, h.Height, outChannels, pixels, text);
    }

    /// <summary>Splits a scanline into samples at the image's bit depth (1/2/4 packed MSB-first, 16 big-endian).</summary>
    private static void UnpackSamples(ReadOnlySpan<byte> row, int depth, int[] samples)
    {
        switch (depth)
        {
            case 8:
                for (int i = 0; i < samples.Length; i++) samples[i] = row[i];
                break;
            case 16:
                for (int i = 0; i < samples.Length; i++) samples[i] = row[2 * i] << 8 | row[2 * i + 1];
                break;
            default:
                int perByte = 8 / depth, mask = (1 << depth) - 1;
                for (int i = 0; i < samples.Length; i++)
                    samples[i] = row[i / perByte] >> (8 - depth * (i % perByte + 1)) & mask;
                break;
        }
    }

    // 16-bit samples keep their high byte (as PIL and libpng's strip_16 do); 1/2/4-bit gray is scaled to 0..255.
    private static byte To8Bit(int v, int depth, int max) => depth switch
    {
        8 => (byte)v,
        16 => (byte)(v >> 8),
        _ => (byte)(v * 255 / max),
    };

    private static void ReadText(string source, string type, ReadOnlySpan<byte> body, Dictionary<string, string> text, int maxChunk, ref long budget)
    {
        // Uncompressed text counts against the total too, so many plain chunks cannot add up to gigabytes of strings.
        if ((budget -= body.Length) < 0) throw TooMuchText(source);
        int nul = body.IndexOf((byte)0);
        if (nul < 1) throw Bad(source, $"{type} chunk without a keyword");
        string key = Encoding.Latin1.GetString(body[..nul]);
        var rest = body[(nul + 1)..];
        switch (type)
        {
            case "tEXt":
                text[key] = Encoding.Latin1.GetString(rest);
                break;
            case "zTXt":
                if (rest.Length < 1 || rest[0] != 0) throw Bad(source, $"zTXt \"{key}\" uses an unknown compression method");
                text[key] = Encoding.Latin1.GetString(InflateText(source, key, rest[1..], maxChunk, ref budget));
                break;
            default:
                if (rest.Length < 2) throw Bad(source, $"iTXt \"{key}\" is truncated");
                bool compressed = rest[0] == 1;
                rest = rest[2..];
                for (int skip = 0; skip < 2; skip++) // language tag, translated keyword
                {
                    int z = rest.IndexOf((byte)0);
                    if (z < 0) throw Bad(source, $"iTXt \"{key}\" is truncated");
                    rest = rest[(z + 1)..];
                }
                text[key] = Encoding.UTF8.GetString(compressed ? InflateText(source, key, rest, maxChunk, ref budget) : rest);
                break;
        }
    }

    /// <summary>Inflates at most min(maxChunk, budget) bytes; one byte more is a decompression bomb and refused.</summary>
    private static byte[] InflateText(string source, string key, ReadOnlySpan<byte> compressed, int maxChunk, ref long budget)
    {
        try
        {
            using var z = new ZLibStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
            int cap = (int)Math.Min(maxChunk, Math.Max(budget, 0));
            var ms = new MemoryStream();
            var buf = new byte[16384];
            int n;
            while ((n = z.Read(buf, 0, buf.Length)) > 0)
            {
                if (ms.Length + n > cap)
                    throw ms.Length + n > maxChunk
                        ? Bad(source, $"compressed text \"{key}\" inflates to more than {maxChunk} bytes (a decompression bomb?); not read")
                        : TooMuchText(source);
                ms.Write(buf, 0, n);
            }
            budget -= ms.Length;
            return ms.ToArray();
        }
        catch (InvalidDataException)
        {
            throw Bad(source, $"compressed text \"{key}\" is corrupt");
        }
    }

    private static InvalidInputException TooMuchText(string source) =>
        Bad(source, "the text chunks add up to more than the limit on PNG text (a decompression bomb?); not read");

    private static uint ReadBE(ReadOnlySpan<byte> b) => (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    private static int ReadBE16(ReadOnlySpan<byte> b) => b[0] << 8 | b[1];

    private static InvalidInputException Bad(string source, string problem) => new($"{source}: {problem}");
}
