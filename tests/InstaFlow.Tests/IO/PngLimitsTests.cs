// PNG resource limits: compressed text chunks are inflated with a cap per chunk and in total (decompression bombs),
// and invert refuses an image too large to encode before decoding it.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public static class PngChunks
{
    /// <summary>One chunk: length, type, data, CRC over type and data.</summary>
    public static byte[] Chunk(string type, ReadOnlySpan<byte> data)
    {
        var b = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, b.AsSpan(4));
        data.CopyTo(b.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8 + data.Length), Crc32.Compute(b.AsSpan(4, 4 + data.Length)));
        return b;
    }

    /// <summary>A valid 1x1 RGB PNG with the given chunks inserted before IEND.</summary>
    public static byte[] WithChunks(params byte[][] chunks)
    {
        var png = Png.Encode(1, 1, 3, new byte[] { 10, 20, 30 });
        var iend = png.AsSpan(png.Length - 12).ToArray();
        return [.. png.AsSpan(0, png.Length - 12), .. chunks.SelectMany(c => c), .. iend];
    }

    public static byte[] Zlib(byte[] data)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.SmallestSize, leaveOpen: true)) z.Write(data);
        return ms.ToArray();
    }

    /// <summary>A zTXt chunk whose text inflates to <paramref name="inflated"/> zero bytes.</summary>
    public static byte[] ZText(string key, int inflated) => Chunk("zTXt", [.. Encoding.Latin1.GetBytes(key), 0, 0, .. Zlib(new byte[inflated])]);
}

public sealed class PngLimitsTests
{
    [Fact]
    public void Decode_ZTxtBomb_IsRefusedWithoutInflatingIt()
    {
        var png = PngChunks.WithChunks(PngChunks.ZText("bomb", 64 << 20)); // 64 MB of zeros in about 64 KB
        Assert.True(png.Length < 200_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidInputException>(() => Png.Decode(png, "bomb.png"));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("decompression bomb", e.Message);
        Assert.True(allocated < 16 << 20, $"refusing the bomb allocated {allocated} bytes");
    }

    [Fact]
    public void Decode_ManyTextChunksOverTheTotal_AreRefused()
    {
        var limits = new ImageLimits { MaxTextChunkBytes = 1000, MaxTextBytes = 5000 };
        var chunks = Enumerable.Range(0, 10).Select(i => PngChunks.ZText($"k{i}", 900)).ToArray();
        var e = Assert.Throws<InvalidInputException>(() => PngReader.Decode(PngChunks.WithChunks(chunks), "many.png", limits));
        Assert.Contains("limit on PNG text", e.Message);
        // Under both limits the same kind of file reads, text and all.
        var ok = PngReader.Decode(PngChunks.WithChunks(chunks[..4]), "ok.png", limits);
        Assert.Equal(900, ok.Text["k3"].Length);
    }

    [Fact]
    public void Invert_HugeImageHeader_RefusedBeforeDecoding()
    {
        // A 4096x4096 header over a few bytes of data: only the header may be looked at.
        var png = Png.Encode(1, 1, 3, new byte[] { 1, 2, 3 });
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32.Compute(png.AsSpan(12, 17)));
        var dir = Directory.CreateTempSubdirectory("instaflow-invert-").FullName;
        try
        {
            var path = Path.Combine(dir, "huge.png");
            File.WriteAllBytes(path, png);
            Cli.CliRunner.AssertUserError(["invert", "--image", path, "--prompt", "x", "-o", Path.Combine(dir, "n.safetensors")], "4096x4096", "over the limit");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
