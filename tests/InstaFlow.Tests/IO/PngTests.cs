// PNG writer/reader: round trips of odd-sized images with text, the fixture image against its golden pixels, and
// palette / 16-bit / low-bit-depth / tRNS files built by a small encoder in this test (every filter type used).
using System.IO.Compression;
using System.Text;
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public sealed class PngTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-png-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] RandomBytes(int seed, int n)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 5, 1)]
    [InlineData(13, 3, 2)]
    [InlineData(33, 17, 3)]
    [InlineData(1, 9, 3)]
    [InlineData(17, 31, 4)]
    public void Write_ThenRead_RoundTripsPixelsAndText(int width, int height, int channels)
    {
        var pixels = RandomBytes(width * 100 + height * 10 + channels, width * height * channels);
        var text = new Dictionary<string, string> { ["prompt"] = "a photo of a café", ["seed"] = "42", ["emoji"] = "cat 🐱 ✓" };
        string path = Path.Combine(_dir, $"rt{channels}.png");
        Png.Write(path, width, height, channels, pixels, text);
        Assert.False(File.Exists(path + ".tmp"));

        var img = Png.Read(path);
        Assert.Equal((width, height, channels), (img.Width, img.Height, img.Channels));
        Assert.Equal(pixels, img.Pixels);
        Assert.Equal(text, img.Text);
    }

    [Fact]
    public void Read_SeededFixturePng_EqualsGoldenUint8Pixels()
    {
        string dir = Path.Combine(TestUtil.Fixtures, "e2e_seeded");
        var img = Png.Read(Path.Combine(dir, "case0.png"));
        using var golden = SafeTensors.Open(Path.Combine(dir, "case0.safetensors"));
        var info = golden.Info("image_u8_hwc");
        Assert.Equal(info.Shape, new[] { img.Height, img.Width, img.Channels });
        var expected = golden.ReadU8("image_u8_hwc");
        int maxDiff = expected.Zip(img.Pixels, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff == 0, $"case0.png differs from image_u8_hwc: max abs diff {maxDiff}");
    }

    [Fact]
    public void Crc32_CheckString_MatchesStandardValue() => Assert.Equal(0xCBF43926u, Crc32.Compute(Encoding.ASCII.GetBytes("123456789")));

    [Fact]
    public void ToRgbOnWhite_Rgba_CompositesOverWhite()
    {
        var img = new PngImage(3, 1, 4, new byte[] { 200, 100, 0, 255, 200, 100, 0, 0, 0, 0, 0, 128 });
        var rgb = img.ToRgbOnWhite();
        Assert.Equal(3, rgb.Channels);
        Assert.Equal(new byte[] { 200, 100, 0, 255, 255, 255, 127, 127, 127 }, rgb.Pixels);
        Assert.Equal(new byte[] { 9, 9, 9 }, new PngImage(1, 1, 1, new byte[] { 9 }).ToRgbOnWhite().Pixels);
    }

    // ---- a minimal independent encoder for the formats our writer never produces ----

    private static byte[] BuildPng(int width, int height, int depth, int colorType, byte[][] rows, int bpp,
        byte[]? plte = null, byte[]? trns = null, int interlace = 0, bool zeroCrc = false)
    {
        var ms = new MemoryStream();
        ms.Write(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 });
        var ihdr = new byte[13];
        Png.WriteBE(ihdr, (uint)width);
        Png.WriteBE(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = (byte)depth; ihdr[9] = (byte)colorType; ihdr[12] = (byte)interlace;
        Chunk(ms, "IHDR", ihdr, zeroCrc);
        if (plte != null) Chunk(ms, "PLTE", plte, false);
        if (trns != null) Chunk(ms, "tRNS", trns, false);
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true))
        {
            var prev = new byte[rows[0].Length];
            for (int y = 0; y < rows.Length; y++)
            {
                int f = y % 5; // cycle through None, Sub, Up, Average, Paeth
                zs.WriteByte((byte)f);
                for (int i = 0; i < rows[y].Length; i++)
                {
                    int a = i >= bpp ? rows[y][i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                    int p = a + b - c;
                    int pred = f switch
                    {
                        0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2,
                        _ => Math.Abs(p - a) <= Math.Abs(p - b) && Math.Abs(p - a) <= Math.Abs(p - c) ? a : Math.Abs(p - b) <= Math.Abs(p - c) ? b : c,
                    };
                    zs.WriteByte((byte)(rows[y][i] - pred));
                }
                prev = rows[y];
            }
        }
        Chunk(ms, "IDAT", z.ToArray(), false);
        Chunk(ms, "IEND", Array.Empty<byte>(), false);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data, bool zeroCrc)
    {
        var head = new byte[8];
        Png.WriteBE(head, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, 0, 4, head, 4);
        s.Write(head);
        s.Write(data);
        var crc = new byte[4];
        if (!zeroCrc) Png.WriteBE(crc, Crc32.Compute([.. head.AsSpan(4), .. data]));
        s.Write(crc);
    }

    /// <summary>Packs samples MSB-first at the given bit depth (16-bit big-endian), one row.</summary>
    private static byte[] Pack(int[] samples, int depth)
    {
        if (depth == 16) return samples.SelectMany(v => new[] { (byte)(v >> 8), (byte)v }).ToArray();
        var row = new byte[(samples.Length * depth + 7) / 8];
        for (int i = 0; i < samples.Length; i++) row[i * depth / 8] |= (byte)(samples[i] << (8 - depth - i * depth % 8));
        return row;
    }

    private static int[][] RandomSamples(int seed, int height, int perRow, int max)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, height).Select(_ => Enumerable.Range(0, perRow).Select(_ => rng.Next(max + 1)).ToArray()).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void Decode_Gray_ScalesToEightBits(int depth)
    {
        int w = 11, h = 7, max = (1 << depth) - 1;
        var s = RandomSamples(depth, h, w, max);
        var png = BuildPng(w, h, depth, 0, s.Select(r => Pack(r, depth)).ToArray(), Math.Max(1, depth / 8));
        var img = Png.Decode(png);
        Assert.Equal(1, img.Channels);
        var expected = s.SelectMany(r => r).Select(v => depth == 16 ? (byte)(v >> 8) : (byte)(v * 255 / max)).ToArray();
        Assert.Equal(expected, img.Pixels);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void Decode_PaletteWithTrns_GivesRgba(int depth)
    {
        int w = 9, h = 6, entries = 1 << depth;
        var plte = RandomBytes(depth, entries * 3);
        var trns = RandomBytes(depth + 1, entries / 2 + 1).Take(Math.Min(entries, entries / 2 + 1)).ToArray(); // shorter than the palette
        var s = RandomSamples(depth + 2, h, w, entries - 1);
        var img = Png.Decode(BuildPng(w, h, depth, 3, s.Select(r => Pack(r, depth)).ToArray(), 1, plte, trns));
        Assert.Equal(4, img.Channels);
        var expected = s.SelectMany(r => r).SelectMany(i => new[] { plte[3 * i], plte[3 * i + 1], plte[3 * i + 2], i < trns.Length ? trns[i] : (byte)255 }).ToArray();
        Assert.Equal(expected, img.Pixels);
    }

    [Fact]
    public void Decode_Rgb16AndRgba16_KeepHighByte()
    {
        int w = 5, h = 6;
        foreach (var (colorType, ch) in new[] { (2, 3), (6, 4), (4, 2) })
        {
            var s = RandomSamples(colorType, h, w * ch, 65535);
            var img = Png.Decode(BuildPng(w, h, 16, colorType, s.Select(r => Pack(r, 16)).ToArray(), 2 * ch));
            Assert.Equal(ch, img.Channels);
            Assert.Equal(s.SelectMany(r => r).Select(v => (byte)(v >> 8)).ToArray(), img.Pixels);
        }
    }

    [Fact]
    public void Decode_RgbAndGrayWithTrnsKey_AddsAlpha()
    {
        var rgb = new[] { new[] { 1, 2, 3, 4, 5, 6 } };
        var img = Png.Decode(BuildPng(2, 1, 8, 2, rgb.Select(r => Pack(r, 8)).ToArray(), 3, trns: new byte[] { 0, 4, 0, 5, 0, 6 }));
        Assert.Equal(new byte[] { 1, 2, 3, 255, 4, 5, 6, 0 }, img.Pixels);

        var gray = new[] { new[] { 1000, 65535 } };
        img = Png.Decode(BuildPng(2, 1, 16, 0, gray.Select(r => Pack(r, 16)).ToArray(), 2, trns: new byte[] { 0x03, 0xE8 }));
        Assert.Equal(2, img.Channels);
        Assert.Equal(new byte[] { 3, 0, 255, 255 }, img.Pixels);
    }

    [Fact]
    public void Read_Interlaced_ThrowsNotSupportedWithHint()
    {
        string path = Path.Combine(_dir, "adam7.png");
        File.WriteAllBytes(path, BuildPng(2, 2, 8, 0, new[] { new byte[2], new byte[2] }, 1, interlace: 1));
        var ex = Assert.Throws<NotSupportedException>(() => Png.Read(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("interlac", ex.Message);
    }

    [Fact]
    public void Read_BadCrc_ThrowsInvalidDataNamingFile()
    {
        string path = Path.Combine(_dir, "crc.png");
        File.WriteAllBytes(path, BuildPng(2, 2, 8, 0, new[] { new byte[2], new byte[2] }, 1, zeroCrc: true));
        var ex = Assert.Throws<InvalidInputException>(() => Png.Read(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("CRC mismatch in chunk IHDR", ex.Message);
    }

    [Fact]
    public void Read_TruncatedOrNotPng_ThrowsInvalidDataNamingFile()
    {
        var full = Png.Encode(19, 13, 3, RandomBytes(5, 19 * 13 * 3));
        foreach (var (name, bytes, problem) in new[]
        {
            ("cut.png", full[..(full.Length - 20)], "truncated"),
            ("head.png", full[..30], "truncated"),
            ("text.png", Encoding.ASCII.GetBytes("hello, not an image"), "not a PNG"),
        })
        {
            string path = Path.Combine(_dir, name);
            File.WriteAllBytes(path, bytes);
            var ex = Assert.Throws<InvalidInputException>(() => Png.Read(path));
            Assert.Contains(path, ex.Message);
            Assert.Contains(problem, ex.Message);
        }
    }

    [Fact]
    public void Decode_ShortImageData_ThrowsTruncated()
    {
        // Valid chunks and CRCs, but the IDAT holds only the first of three rows.
        var png = BuildPng(4, 1, 8, 0, new[] { new byte[4] }, 1);
        var ihdrHeight = 8 + 8 + 4 + 3; // signature, IHDR length+type, width, low byte of height
        png[ihdrHeight] = 3;
        Png.WriteBE(png.AsSpan(8 + 8 + 13), Crc32.Compute(png.AsSpan(12, 17)));
        var ex = Assert.Throws<InvalidInputException>(() => Png.Decode(png, "short.png"));
        Assert.Contains("short.png: truncated image data", ex.Message);
    }
}
