// Pixel retrieval: the vectorized integer distance equals the scalar sum, ranks count the strictly nearer candidates
// (ties in the true image's favour), the dataset tensor converts back to its exact bytes, and the summary's median.
using InstaFlow.Evaluation;
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Evaluation;

public class PixelRetrievalTests
{
    private static byte[][] RandomImages(int seed, int count, int bytes)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => { var b = new byte[bytes]; rng.NextBytes(b); return b; }).ToArray();
    }

    private static long ScalarDistance(byte[] a, byte[] b)
    {
        long s = 0;
        for (int k = 0; k < a.Length; k++) s += (a[k] - b[k]) * (a[k] - b[k]);
        return s;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(31)]
    [InlineData(12288)]
    [InlineData(12291)]
    public void SquaredDistance_RandomBytes_EqualsTheScalarSum(int length)
    {
        var (a, b) = (RandomImages(1, 1, length)[0], RandomImages(2, 1, length)[0]);
        Assert.Equal(ScalarDistance(a, b), PixelRetrieval.SquaredDistance(a, b));
        // the largest possible difference everywhere stays exact
        var zeros = new byte[length];
        var full = Enumerable.Repeat((byte)255, length).ToArray();
        Assert.Equal(65025L * length, PixelRetrieval.SquaredDistance(zeros, full));
    }

    [Fact]
    public void Ranks_RandomCandidates_AreOnePlusTheStrictlyNearerCount()
    {
        const int n = 50, bytes = 8 * 8 * 3;
        var cands = RandomImages(3, n, bytes);
        var retrieval = new PixelRetrieval(cands);
        var queries = RandomImages(4, 7, bytes);
        int[] truth = [0, 5, 9, 17, 33, 42, 49];
        var ranks = retrieval.Ranks(queries, truth);
        for (int i = 0; i < queries.Length; i++)
        {
            long own = ScalarDistance(queries[i], cands[truth[i]]);
            int expected = 1 + cands.Count(c => ScalarDistance(queries[i], c) < own);
            Assert.True(expected == ranks[i], $"query {i}: rank {ranks[i]}, brute force {expected}");
        }
        // a query equal to its true image is rank 1
        Assert.Equal([1], retrieval.Ranks([cands[12]], [12]));
    }

    [Fact]
    public void Ranks_DuplicateOfTheTrueImage_TieCountsInItsFavour()
    {
        var img = RandomImages(5, 1, 48)[0];
        var other = RandomImages(6, 1, 48)[0];
        var retrieval = new PixelRetrieval([other, img, (byte[])img.Clone()]);
        Assert.Equal([1, 1], retrieval.Ranks([img, img], [1, 2]));
        Assert.Equal([3], retrieval.Ranks([img], [0]));
    }

    [Fact]
    public void FromSignedImages_DatasetTensor_GivesBackTheExactBytes()
    {
        var hwc = RandomImages(7, 3, 5 * 4 * 3);
        var t = Tensor.EmptyPersistent(3, 3, 4, 5);
        for (int i = 0; i < 3; i++) ImageTensors.FillChwSigned(hwc[i], t.Span.Slice(i * 60, 60), 3);
        var retrieval = PixelRetrieval.FromSignedImages(t);
        Assert.Equal(60, retrieval.ImageBytes);
        // each image is at distance 0 from itself only if the bytes came back exactly; the mean of one image is itself
        for (int i = 0; i < 3; i++) Assert.Equal(hwc[i], new PixelRetrieval([hwc[i]]).MeanImage());
        Assert.Equal([1, 1, 1], retrieval.Ranks(hwc, [0, 1, 2]));
        var mean = retrieval.MeanImage();
        for (int k = 0; k < 60; k++) Assert.Equal((byte)Math.Round((hwc[0][k] + hwc[1][k] + hwc[2][k]) / 3.0), mean[k]);
    }

    [Fact]
    public void Ranks_QueryOfAnotherSize_InvalidInputNamesTheSize()
    {
        var retrieval = new PixelRetrieval(RandomImages(8, 2, 48));
        Assert.Contains("dataset's image size", Assert.Throws<InvalidInputException>(() => retrieval.Ranks([new byte[12]], [0])).Message);
        Assert.Throws<InvalidInputException>(() => new PixelRetrieval([new byte[PixelRetrieval.MaxBytes + 3]]));
    }

    [Fact]
    public void FromRanks_OddAndEvenCounts_TopFractionsAndMedian()
    {
        var odd = RetrievalScore.FromRanks([1, 12, 3, 1, 10]);
        Assert.Equal((0.4, 0.8, 3.0), (odd.Top1, odd.Top10, odd.MedianRank));
        var even = RetrievalScore.FromRanks([4, 1, 100, 7]);
        Assert.Equal((0.25, 0.75, 5.5), (even.Top1, even.Top10, even.MedianRank));
        var random = RetrievalScore.Random(3786);
        Assert.Equal(1893.5, random.MedianRank);
        Assert.Equal(10.0 / 3786, random.Top10, 12);
    }
}
