// Reads the images users hand us (PNG, JPEG, WebP, BMP, GIF's first frame) as 8-bit RGB, the format picked by the
// file's magic bytes; the size in the header is checked against ImageLimits before anything is decoded.
using SkiaSharp;

namespace InstaFlow.IO;

public static class ImageFile
{
    /// <summary>What error messages list as readable.</summary>
    public const string SupportedFormats = "PNG, JPEG, WebP, BMP or GIF";

    /// <summary>File extensions that folders of input images (eval clip-score, eval fid) are searched for.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"];

    /// <summary>True when path's extension is one of <see cref="Extensions"/> (any case).</summary>
    public static bool HasImageExtension(string path) =>
        Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// The image files named by paths: a folder gives its files with an image extension (sorted by name, not recursive),
    /// a file is taken as is (its format is checked when it is read).
    /// </summary>
    public static List<string> ListImages(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.GetFiles(p).Where(HasImageExtension).Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new FileNotFoundException($"{p}: no such image file or folder", p);
        }
        return files;
    }

    /// <summary>
    /// The image at path as RGB (Channels = 3): gray is replicated and alpha dropped, as PIL's convert("RGB") does.
    /// PNG text chunks are kept in Text (other formats have none). Errors are InvalidInputExceptions naming the file.
    /// </summary>
    public static PngImage Read(string path, ImageLimits? limits = null)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: {path}", path);
        return Decode(File.ReadAllBytes(path), path, limits);
    }

    /// <summary>Decodes an encoded image held in memory; source names it in error messages.</summary>
    public static PngImage Decode(byte[] data, string source, ImageLimits? limits = null)
    {
        limits ??= ImageLimits.Default;
        string? format = Sniff(data);
        if (format is null)
            throw new InvalidInputException($"{source}: not an image this program reads (expected {SupportedFormats}; the file starts with {Hex(data)})");
        // PNG keeps our own reader: it returns the text chunks (the prompt clip-score reads) and checks limits itself.
        if (format == "PNG")
        {
            try
            {
                return PngReader.Decode(data, source, limits).ToRgbDroppingAlpha();
            }
            catch (NotSupportedException)
            {
                // Interlaced PNGs are not in our reader; Skia decodes them (without their text chunks).
            }
        }
        return DecodeWithSkia(data, source, format, limits);
    }

    /// <summary>The format named by the first bytes, or null for anything else.</summary>
    private static string? Sniff(ReadOnlySpan<byte> d)
    {
        if (d.StartsWith(Png.Signature)) return "PNG";
        if (d.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "JPEG";
        if (d.Length >= 12 && d.StartsWith("RIFF"u8) && d.Slice(8, 4).SequenceEqual("WEBP"u8)) return "WebP";
        if (d.StartsWith("GIF87a"u8) || d.StartsWith("GIF89a"u8)) return "GIF";
        if (d.StartsWith("BM"u8)) return "BMP";
        return null;
    }

    private static unsafe PngImage DecodeWithSkia(byte[] data, string source, string format, ImageLimits limits)
    {
        // Creating a codec reads the header only; the pixels are decoded by GetPixels below, after the limit check.
        // The codec owns the stream (and frees it at once when creation fails).
        using var codec = SKCodec.Create(new SKMemoryStream(data), out var created);
        if (codec is null)
            throw new InvalidInputException($"{source}: a corrupt or truncated {format} file ({Describe(created)}); readable formats are {SupportedFormats}");
        int w = codec.Info.Width, h = codec.Info.Height;
        if (w <= 0 || h <= 0) throw new InvalidInputException($"{source}: the {format} header gives an empty size {w}x{h}");
        limits.Check(source, w, h);

        // Unpremultiplied RGBA with no colour space: the stored samples as they are (no ICC conversion, no alpha
        // multiplication), which is what PIL's convert("RGB") keeps once A is dropped.
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[checked((long)w * h * 4)];
        SKCodecResult r;
        fixed (byte* p = rgba) r = codec.GetPixels(info, (IntPtr)p);
        // Truncated data still yields an image (the rest filled in); PIL refuses such files, and so do we.
        if (r != SKCodecResult.Success)
            throw new InvalidInputException($"{source}: a corrupt or truncated {format} file ({Describe(r)}); readable formats are {SupportedFormats}");

        var rgb = new byte[(long)w * h * 3];
        for (long i = 0, o = 0; i < rgba.Length; i += 4, o += 3)
        {
            rgb[o] = rgba[i];
            rgb[o + 1] = rgba[i + 1];
            rgb[o + 2] = rgba[i + 2];
        }
        return new PngImage(w, h, 3, rgb);
    }

    private static string Describe(SKCodecResult r) => r switch
    {
        SKCodecResult.IncompleteInput => "the data ends early",
        SKCodecResult.ErrorInInput => "the data is invalid",
        SKCodecResult.Unimplemented => "a variant the decoder does not implement",
        _ => $"decoder result {r}",
    };

    private static string Hex(ReadOnlySpan<byte> d) =>
        d.IsEmpty ? "nothing (the file is empty)" : Convert.ToHexString(d[..Math.Min(8, d.Length)]);
}
