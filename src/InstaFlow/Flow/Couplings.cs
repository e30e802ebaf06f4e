// Couplings (Z0, Z1) for rectified-flow training: the batch type, where batches come from, and 1-RF's independent
// coupling. Reflowed couplings (pairs from a trained flow's ODE) are in Reflow.cs.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Flow;

/// <summary>
/// A batch of couplings: Points[0] is the noise Z0, Points[^1] the data end Z1, anything between is the teacher's
/// state at interior times of a grid (for k-step distillation). Cond is the per-sample condition or null.
/// </summary>
public sealed record PairBatch(Tensor[] Points, Tensor? Cond);

/// <summary>Where training couplings come from. All randomness must come from rng so that runs resume exactly.</summary>
public interface IPairSource
{
    PairBatch Next(TorchGenerator rng, int batch);
}

/// <summary>Row (first-dimension slice) copies between batch tensors.</summary>
public static class Rows
{
    public static void Copy(Tensor src, long srcRow, Tensor dst, long dstRow)
    {
        long n = src.Numel / src.Dim(0);
        if (dst.Numel / dst.Dim(0) != n) throw new ArgumentException($"row copy: rows of {src.Describe()} and {dst.Describe()} differ in size");
        src.Span.Slice((int)(srcRow * n), (int)n).CopyTo(dst.Span.Slice((int)(dstRow * n), (int)n));
    }
}

/// <summary>1-RF couplings: Z0 ~ N(0, I) and Z1 (with its condition) drawn independently from the data.</summary>
public sealed class IndependentCoupling(int[] sampleShape, Func<TorchGenerator, int, (Tensor Data, Tensor? Cond)> data) : IPairSource
{
    public PairBatch Next(TorchGenerator rng, int batch)
    {
        var z0 = rng.Randn([batch, .. sampleShape]);
        var (z1, cond) = data(rng, batch);
        return new PairBatch([z0, z1], cond);
    }
}
