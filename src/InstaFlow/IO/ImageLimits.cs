// The largest image a user may hand us (per side and in pixels), checked against the file's header before decoding
// so a small file claiming a huge size cannot make us allocate gigabytes.
using System.Globalization;

namespace InstaFlow.IO;

public sealed record ImageLimits(int MaxSide = 8192, long MaxPixels = 40_000_000)
{
    /// <summary>The most one compressed PNG text chunk may inflate to (Pillow's MAX_TEXT_CHUNK): a zTXt bomb stops here.</summary>
    public int MaxTextChunkBytes { get; init; } = 1 << 20;

    /// <summary>The most all of a PNG's text may take, compressed or not (Pillow's MAX_TEXT_MEMORY).</summary>
    public long MaxTextBytes { get; init; } = 64L << 20;

    public static ImageLimits Default { get; } = new();

    /// <summary>Throws an InvalidInputException naming source, the image's size and the limit it breaks.</summary>
    public void Check(string source, int width, int height)
    {
        long pixels = (long)width * height;
        if (width <= MaxSide && height <= MaxSide && pixels <= MaxPixels) return;
        throw new InvalidInputException(string.Create(CultureInfo.InvariantCulture,
            $"{source}: the image is {width}x{height} ({pixels} pixels), over the limit of {MaxSide} pixels per side and {MaxPixels} pixels in all; resize it first"));
    }
}
