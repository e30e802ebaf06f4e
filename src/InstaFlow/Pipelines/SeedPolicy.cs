// The one seed rule of the library, for the CLI, the server and every recipe: image i of a run with seed S starts from
// the noise torch.Generator("cpu").manual_seed(S + i) draws for one image, so each image of a batch can be made again
// alone, and image 0 equals the Python pipeline's for that seed.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Pipelines;

public static class SeedPolicy
{
    /// <summary>The seed of image i of a run with the given seed (wrapping at 2^64).</summary>
    public static ulong ImageSeed(ulong seed, int index) => unchecked(seed + (ulong)index);

    /// <summary>A fresh random seed below 2^32 (exact as a JSON number, and what torch keeps of a seed), for runs that give none.</summary>
    public static ulong NewSeed() => (ulong)System.Random.Shared.NextInt64(0, 1L << 32);

    /// <summary>Noise [count, ...sample] whose row i is torch.randn(1, ...sample) after manual_seed(ImageSeed(seed, i)).</summary>
    public static Tensor Noise(ulong seed, int count, int[] sample)
    {
        var noise = Tensor.Empty([count, .. sample]);
        long row = noise.Numel / count;
        for (int i = 0; i < count; i++)
            new TorchGenerator(ImageSeed(seed, i)).FillNormal(noise.Span.Slice((int)(i * row), (int)row));
        return noise;
    }
}
