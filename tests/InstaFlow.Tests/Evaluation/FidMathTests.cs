// pytorch-fid's calculate_frechet_distance goldens in float64: means and N-1 covariances, and the distance for full-rank
// covariances (fid_math0) and for fewer samples than dimensions (fid_math1, singular covariances).
using InstaFlow.Evaluation;
using InstaFlow.IO;
using Xunit.Abstractions;

namespace InstaFlow.Tests.Evaluation;

public class FidMathTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("fid_math0.safetensors")]
    [InlineData("fid_math1.safetensors")]
    public void FidMath_Golden_MatchesMeansCovariancesAndDistance(string name)
    {
        using var golden = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "fid_inception", name));
        var (a, b) = (golden.ReadF64("act1"), golden.ReadF64("act2"));
        int d = golden.Info("act1").Shape[1], na = golden.Info("act1").Shape[0], nb = golden.Info("act2").Shape[0];
        var (m1, s1) = FrechetDistance.MeanCov(a, na, d);
        var (m2, s2) = FrechetDistance.MeanCov(b, nb, d);
        AssertRelative(golden.ReadF64("mu1"), m1, 1e-12, "mu1");
        AssertRelative(golden.ReadF64("sigma1"), s1, 1e-12, "sigma1");
        AssertRelative(golden.ReadF64("mu2"), m2, 1e-12, "mu2");
        AssertRelative(golden.ReadF64("sigma2"), s2, 1e-12, "sigma2");
        AssertRelative(golden.ReadF64("fid"), [Fid.Compute(a, na, b, nb, d)], 1e-6, "fid");
    }

    /// <summary>max |expected - actual| &lt;= rel * max |expected|, printing the relative difference either way.</summary>
    private void AssertRelative(double[] expected, double[] actual, double rel, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs), diff = expected.Zip(actual, (e, x) => Math.Abs(e - x)).Max();
        output.WriteLine($"{what}: max abs diff {diff:E2}, relative to max |expected| {diff / scale:E2}");
        Assert.True(diff <= rel * scale, $"{what}: max abs diff {diff} is {diff / scale:E2} of max |expected| {scale}, tolerance {rel:E0}");
    }
}
