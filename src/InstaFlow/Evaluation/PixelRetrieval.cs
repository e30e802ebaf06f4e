// Retrieval by pixel distance: the rank of a caption's own image among all candidate images, ordered by mean squared
// error in RGB pixel space to a generated image (rank 1 = nearest), with top-1 / top-10 fractions and the median rank.
using System.Numerics;
using InstaFlow.Tensors;

namespace InstaFlow.Evaluation;

/// <summary>Top-1 and top-10 fractions and the median of the ranks of the true images (1 = nearest).</summary>
public sealed record RetrievalScore(double Top1, double Top10, double MedianRank)
{
    /// <summary>The ranks summarised, in query order (null for the expected values of <see cref="Random"/>).</summary>
    public IReadOnlyList<int>? Ranks { get; init; }

    public static RetrievalScore FromRanks(IReadOnlyCollection<int> ranks)
    {
        if (ranks.Count == 0) throw new ArgumentException("no ranks to summarise", nameof(ranks));
        var sorted = ranks.Order().ToArray();
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
        return new RetrievalScore(sorted.Count(r => r <= 1) / (double)n, sorted.Count(r => r <= 10) / (double)n, median) { Ranks = ranks.ToArray() };
    }

    /// <summary>What a random image scores among n candidates: top-1 1/n, top-10 10/n, expected rank (n + 1) / 2.</summary>
    public static RetrievalScore Random(int n) => new(1.0 / n, Math.Min(10, n) / (double)n, (n + 1) / 2.0);
}

/// <summary>
/// The candidate set, held once as bytes (HWC RGB, one row per image). Distances are sums of squared byte differences,
/// computed exactly in integers, so the ranking (MSE in [0, 1] pixel space is the same sum / (255^2 x pixels x 3)) has
/// no rounding ties; a candidate at exactly the true image's distance does not push it down (rank = 1 + the number of
/// strictly nearer candidates).
/// </summary>
public sealed class PixelRetrieval
{
    // 255^2 x MaxBytes must stay below 2^32 for the unsigned per-image sums.
    public const int MaxBytes = 66_000;
    private readonly byte[] _candidates;

    public PixelRetrieval(IReadOnlyList<byte[]> candidates)
    {
        if (candidates.Count == 0) throw new InvalidInputException("pixel retrieval needs at least one candidate image");
        ImageBytes = candidates[0].Length;
        if (ImageBytes == 0 || ImageBytes > MaxBytes)
            throw new InvalidInputException($"pixel retrieval compares images of up to {MaxBytes} bytes (e.g. 148x148 RGB), got {ImageBytes}");
        Count = candidates.Count;
        if ((long)Count * ImageBytes > Array.MaxLength)
            throw new InvalidInputException($"pixel retrieval holds the candidates in one array: {Count} images of {ImageBytes} bytes are too many");
        _candidates = new byte[(long)Count * ImageBytes];
        for (int i = 0; i < Count; i++)
        {
            if (candidates[i].Length != ImageBytes)
                throw new InvalidInputException($"candidate image {i} has {candidates[i].Length} bytes, the first has {ImageBytes}: all must be the same size");
            candidates[i].CopyTo(_candidates, (long)i * ImageBytes);
        }
    }

    /// <summary>The candidates from a [N, 3, H, W] tensor in [-1, 1] (the dataset's images), as 8-bit HWC RGB.</summary>
    public static PixelRetrieval FromSignedImages(Tensor images)
    {
        ShapeUtil.RequireRank(images, 4, "PixelRetrieval");
        var rows = new List<byte[]>(images.Dim(0));
        for (int s = 0; s < images.Dim(0); s += 256)
        {
            using var scope = TensorScope.Begin();
            rows.AddRange(IO.ImageTensors.ToUint8Hwc(Ops.Narrow(images, 0, s, Math.Min(256, images.Dim(0) - s))));
        }
        return new PixelRetrieval(rows);
    }

    public int Count { get; }
    /// <summary>Bytes per image (H x W x 3).</summary>
    public int ImageBytes { get; }

    /// <summary>
    /// For each query (HWC bytes of the candidates' size), the rank of candidate truth[i] by distance to query i. One
    /// pass over the candidates for the whole batch: each candidate row is compared with every query while it is in cache.
    /// </summary>
    public int[] Ranks(IReadOnlyList<byte[]> queries, IReadOnlyList<int> truth)
    {
        if (queries.Count != truth.Count) throw new ArgumentException($"{queries.Count} queries but {truth.Count} true indices");
        int b = queries.Count;
        for (int i = 0; i < b; i++)
        {
            if (queries[i].Length != ImageBytes)
                throw new InvalidInputException($"generated image {i} has {queries[i].Length} bytes, the candidate images {ImageBytes}: generate at the dataset's image size");
            if ((uint)truth[i] >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(truth), $"true index {truth[i]} outside 0..{Count - 1}");
        }
        var dist = new uint[(long)b * Count];
        Par.ForRange(Count, 16, (start, end) =>
        {
            for (long j = start; j < end; j++)
            {
                var row = _candidates.AsSpan((int)(j * ImageBytes), ImageBytes);
                for (int i = 0; i < b; i++) dist[i * (long)Count + j] = SquaredDistance(queries[i], row);
            }
        });
        var ranks = new int[b];
        for (int i = 0; i < b; i++)
        {
            var d = dist.AsSpan((int)(i * (long)Count), Count);
            uint own = d[truth[i]];
            int nearer = 0;
            foreach (var v in d) if (v < own) nearer++;
            ranks[i] = nearer + 1;
        }
        return ranks;
    }

    /// <summary>Sum over bytes of (a - b)^2, exact: |a - b| in bytes, squared in 16 bits (255^2 fits), summed in 32.</summary>
    public static uint SquaredDistance(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        int n = a.Length, k = 0;
        var acc = Vector<uint>.Zero;
        for (; k <= n - Vector<byte>.Count; k += Vector<byte>.Count)
        {
            var x = new Vector<byte>(a.Slice(k));
            var y = new Vector<byte>(b.Slice(k));
            var diff = Vector.Max(x, y) - Vector.Min(x, y);
            Vector.Widen(diff, out Vector<ushort> lo, out Vector<ushort> hi);
            lo *= lo; hi *= hi;
            Vector.Widen(lo, out Vector<uint> l0, out Vector<uint> l1);
            Vector.Widen(hi, out Vector<uint> h0, out Vector<uint> h1);
            acc += l0 + l1 + h0 + h1;
        }
        uint sum = Vector.Sum(acc);
        for (; k < n; k++)
        {
            int d = a[k] - b[k];
            sum += (uint)(d * d);
        }
        return sum;
    }

    /// <summary>The per-pixel mean of all candidates (rounded to bytes): the blurriest "generator" there is.</summary>
    public byte[] MeanImage()
    {
        var sum = new long[ImageBytes];
        for (int j = 0; j < Count; j++)
        {
            var row = _candidates.AsSpan(j * ImageBytes, ImageBytes);
            for (int k = 0; k < ImageBytes; k++) sum[k] += row[k];
        }
        return sum.Select(s => (byte)Math.Round((double)s / Count)).ToArray();
    }
}
