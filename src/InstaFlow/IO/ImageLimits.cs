// The largest image a user may hand us (per side and in pixels), checked against the file's header before decoding
// so a small file claiming a huge size cannot make us allocate gigabytes.
using System.Globalization;

namespace InstaFlow.IO;

public sealed record ImageLimits(int MaxSide = 8192, long MaxPixels = 40_000_000)
{
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
