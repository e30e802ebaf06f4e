// ImageFile: JPEG, WebP, BMP and GIF decode to the pixels they were made from, PNG exactly as PngReader does, and
// oversized, unknown, corrupt and truncated files are refused with InvalidDataExceptions naming the file.
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public sealed class ImageFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-imagefile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Save(string name, byte[] bytes)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Read_Jpeg_DecodesSizeAndPixelsWithinJpegError()
    {
        int w = 40, h = 24;
        var rgb = TestImages.SmoothRgb(3, w, h);
        var img = ImageFile.Read(Save("pattern.jpg", TestImages.Jpeg(rgb, w, h)));
        Assert.Equal((w, h, 3), (img.Width, img.Height, img.Channels));
        double sum = 0; int max = 0;
        for (int i = 0; i < rgb.Length; i++)
        {
            int d = Math.Abs(rgb[i] - img.Pixels[i]);
            sum += d; max = Math.Max(max, d);
        }
        Assert.True(sum / rgb.Length < 3 && max < 40, $"JPEG error mean {sum / rgb.Length:F2}, max {max}");
    }

    [Fact]
    public void Read_LosslessWebpWithAlpha_DropsAlphaWithoutPremultiplying()
    {
        int w = 17, h = 9;
        var rgba = new byte[w * h * 4];
        var rng = new Random(5);
        rng.NextBytes(rgba);
        // Alpha 1..255: the lossless encoder may rewrite colours under alpha 0, and never elsewhere.
        for (int i = 3; i < rgba.Length; i += 4) rgba[i] = (byte)rng.Next(1, 256);
        // Named .png on purpose: the format comes from the magic bytes.
        var img = ImageFile.Read(Save("really-webp.png", TestImages.WebpLossless(rgba, w, h)));
        Assert.Equal((w, h, 3), (img.Width, img.Height, img.Channels));
        for (int p = 0; p < w * h; p++)
            for (int c = 0; c < 3; c++) Assert.Equal(rgba[p * 4 + c], img.Pixels[p * 3 + c]);
    }

    [Fact]
    public void Read_BmpAndGif_DecodeExactly()
    {
        int w = 7, h = 5;
        var rgb = TestImages.RandomRgb(9, w, h);
        Assert.Equal(rgb, ImageFile.Read(Save("random.bmp", TestImages.Bmp(rgb, w, h))).Pixels);

        byte[] palette = [255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255];
        var indices = new byte[w * h];
        var rng = new Random(13);
        for (int i = 0; i < indices.Length; i++) indices[i] = (byte)rng.Next(4);
        var gif = ImageFile.Read(Save("random.gif", TestImages.Gif(indices, w, h, palette)));
        Assert.Equal((w, h), (gif.Width, gif.Height));
        for (int i = 0; i < indices.Length; i++)
            for (int c = 0; c < 3; c++) Assert.Equal(palette[indices[i] * 3 + c], gif.Pixels[i * 3 + c]);
    }

    [Fact]
    public void Read_Png_MatchesPngReaderAndKeepsText()
    {
        int w = 6, h = 4;
        var rgba = new byte[w * h * 4];
        new Random(21).NextBytes(rgba);
        var path = Path.Combine(_dir, "rgba.png");
        Png.Write(path, w, h, 4, rgba, new Dictionary<string, string> { ["prompt"] = "a red fox" });
        var expected = PngReader.Read(path).ToRgbDroppingAlpha();
        var img = ImageFile.Read(path);
        Assert.Equal(expected.Pixels, img.Pixels);
        Assert.Equal((w, h, 3), (img.Width, img.Height, img.Channels));
        Assert.Equal("a red fox", img.Text["prompt"]);
    }

    [Fact]
    public void Read_PngHeaderClaiming100000Squared_IsRefusedBeforeDecoding()
    {
        // Signature + a valid IHDR for 100000 x 100000 RGB and nothing else: decoding would need 30 GB.
        var ihdr = new byte[17];
        "IHDR"u8.CopyTo(ihdr);
        WriteBE(ihdr.AsSpan(4), 100000);
        WriteBE(ihdr.AsSpan(8), 100000);
        ihdr[12] = 8; ihdr[13] = 2;
        var file = new List<byte>([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13]);
        file.AddRange(ihdr);
        var crc = new byte[4];
        WriteBE(crc, (int)Crc32.Compute(ihdr));
        file.AddRange(crc);
        var path = Save("huge.png", file.ToArray());
        var e = Assert.Throws<InvalidInputException>(() => ImageFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("100000x100000", e.Message);
        Assert.Contains("8192", e.Message);
    }

    [Fact]
    public void Read_JpegHeaderPatchedTo60000Squared_IsRefusedBeforeDecoding()
    {
        var jpeg = TestImages.Jpeg(TestImages.SmoothRgb(4, 16, 16), 16, 16);
        // SOF0/SOF2 marker: FF C0 or FF C2, length (2), precision (1), height (2), width (2).
        int sof = Enumerable.Range(2, jpeg.Length - 9).First(i => jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC2);
        jpeg[sof + 5] = 0xEA; jpeg[sof + 6] = 0x60; // 60000
        jpeg[sof + 7] = 0xEA; jpeg[sof + 8] = 0x60;
        var path = Save("huge.jpg", jpeg);
        var e = Assert.Throws<InvalidInputException>(() => ImageFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("60000x60000", e.Message);
    }

    [Fact]
    public void Read_SmallerLimits_AreHonoured()
    {
        var path = Save("small.jpg", TestImages.Jpeg(TestImages.SmoothRgb(6, 32, 20), 32, 20));
        var e = Assert.Throws<InvalidInputException>(() => ImageFile.Read(path, new ImageLimits(MaxPixels: 500)));
        Assert.Contains("32x20", e.Message);
        Assert.Contains("500 pixels", e.Message);
        Assert.Equal(32, ImageFile.Read(path, new ImageLimits(MaxSide: 32, MaxPixels: 640)).Width);
    }

    [Fact]
    public void Read_GarbageBytes_NamesTheFileAndTheSupportedFormats()
    {
        var bytes = new byte[64];
        new Random(17).NextBytes(bytes);
        bytes[0] = 0x00;
        var path = Save("noise.jpg", bytes);
        var e = Assert.Throws<InvalidInputException>(() => ImageFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(ImageFile.SupportedFormats, e.Message);
    }

    [Fact]
    public void Read_TruncatedJpeg_IsInvalidData()
    {
        var jpeg = TestImages.Jpeg(TestImages.RandomRgb(8, 48, 48), 48, 48);
        var path = Save("cut.jpg", jpeg[..(jpeg.Length / 2)]);
        var e = Assert.Throws<InvalidInputException>(() => ImageFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("JPEG", e.Message);
    }

    private static void WriteBE(Span<byte> b, int v)
    {
        b[0] = (byte)(v >> 24); b[1] = (byte)(v >> 16); b[2] = (byte)(v >> 8); b[3] = (byte)v;
    }
}
