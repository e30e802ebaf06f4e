// Group norm, fused group norm + SiLU and layer norm kernels against two-pass double references, including a large
// mean offset (the VAE's regime), and bitwise equality of the results for 1 and 2 threads.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

public unsafe class NormTests
{
    internal static float[] Input(int seed, long n, float offset)
    {
        var x = TestUtil.RandomArray(seed, n, 2f);
        for (long i = 0; i < n; i++) x[i] += offset;
        return x;
    }

    internal static (float[] y, float[] mean, float[] rstd) GroupNorm(float[] x, float[]? gamma, float[]? beta, int batch, int channels, int groups, float eps)
    {
        var y = new float[x.Length]; var mean = new float[batch * groups]; var rstd = new float[batch * groups];
        fixed (float* px = x, pg = gamma, pb = beta, py = y, pm = mean, pr = rstd)
            Norms.GroupNormForward(px, pg, pb, py, batch, channels, x.Length / ((long)batch * channels), groups, eps, pm, pr);
        return (y, mean, rstd);
    }

    internal static float[] LayerNorm(float[] x, float[]? gamma, float[]? beta, int n, float eps)
    {
        var y = new float[x.Length];
        fixed (float* px = x, pg = gamma, pb = beta, py = y) Norms.LayerNormForward(px, pg, pb, py, x.Length / n, n, eps, null, null);
        return y;
    }

    [Theory]
    [InlineData(2, 6, 7, 3, 0f, true)]
    [InlineData(1, 32, 33, 32, 0f, false)]
    [InlineData(3, 64, 17, 8, 0f, true)]
    [InlineData(2, 4, 4097, 1, 0f, true)]
    [InlineData(1, 2, 40001, 1, 0f, false)]
    [InlineData(2, 6, 7, 3, 1000f, true)]
    [InlineData(1, 3, 20011, 1, 1000f, true)]
    [InlineData(2, 32, 129, 32, 1000f, false)]
    public void GroupNorm_OddShapes_MatchesDoubleReference(int batch, int channels, int spatial, int groups, float offset, bool affine)
    {
        var x = Input(batch * 100 + channels + spatial, (long)batch * channels * spatial, offset);
        var gamma = affine ? TestUtil.RandomArray(7, channels) : null;
        var beta = affine ? TestUtil.RandomArray(8, channels) : null;
        var (y, mean, rstd) = GroupNorm(x, gamma, beta, batch, channels, groups, 1e-6f);
        var expected = new float[x.Length];
        fixed (float* px = x, pg = gamma, pb = beta, pe = expected) NormsReference.GroupNorm(px, pg, pb, pe, batch, channels, spatial, groups, 1e-6f);
        TestUtil.AssertClose(expected, y, 2e-6f, 2e-6f, $"group norm {batch}x{channels}x{spatial}/{groups} offset {offset}");
        long len = (long)channels / groups * spatial;
        for (int bg = 0; bg < batch * groups; bg++)
        {
            double s = 0, v = 0;
            for (long i = 0; i < len; i++) s += x[bg * len + i];
            double m = s / len;
            for (long i = 0; i < len; i++) v += (x[bg * len + i] - m) * (x[bg * len + i] - m);
            double r = 1 / Math.Sqrt(v / len + 1e-6);
            Assert.True(Math.Abs(mean[bg] - m) <= 1e-6 * Math.Abs(m) + 1e-7, $"mean of group {bg}: {mean[bg]} vs {m}, diff {Math.Abs(mean[bg] - m)}");
            Assert.True(Math.Abs(rstd[bg] - r) <= 1e-6 * r, $"rstd of group {bg}: {rstd[bg]} vs {r}, relative diff {Math.Abs(rstd[bg] - r) / r}");
        }
    }

    [Theory]
    [InlineData(1, 1, 0f, true)]
    [InlineData(7, 17, 0f, false)]
    [InlineData(33, 320, 0f, true)]
    [InlineData(5, 513, 1000f, true)]
    [InlineData(3, 1280, 1000f, false)]
    public void LayerNorm_OddShapes_MatchesDoubleReference(int rows, int n, float offset, bool affine)
    {
        var x = Input(rows + n, (long)rows * n, offset);
        var gamma = affine ? TestUtil.RandomArray(3, n) : null;
        var beta = affine ? TestUtil.RandomArray(4, n) : null;
        var y = LayerNorm(x, gamma, beta, n, 1e-5f);
        var expected = new float[x.Length];
        fixed (float* px = x, pg = gamma, pb = beta, pe = expected) NormsReference.LayerNorm(px, pg, pb, pe, rows, n, 1e-5f);
        TestUtil.AssertClose(expected, y, 2e-6f, 2e-6f, $"layer norm {rows}x{n} offset {offset}");
    }

    [Theory]
    [InlineData(2, 6, 7, 3, 0f, true)]
    [InlineData(3, 64, 17, 8, 0f, true)]
    [InlineData(2, 4, 4097, 1, 0f, false)]
    [InlineData(2, 32, 256, 8, 3f, true)]
    [InlineData(1, 3, 20011, 1, 100f, true)]
    public void GroupNormBackward_OddShapes_MatchesDoubleReference(int batch, int channels, int spatial, int groups, float offset, bool affine)
    {
        var x = Input(batch * 10 + spatial, (long)batch * channels * spatial, offset);
        var g = TestUtil.RandomArray(spatial + 3, x.Length);
        var gamma = affine ? TestUtil.RandomArray(9, channels) : null;
        var (_, mean, rstd) = GroupNorm(x, gamma, null, batch, channels, groups, 1e-6f);
        float[] gx = new float[x.Length], dg = new float[channels], db = new float[channels];
        float[] ex = new float[x.Length], edg = new float[channels], edb = new float[channels];
        int cpg = channels / groups;
        fixed (float* px = x, pg = g, pgam = gamma, pm = mean, pr = rstd, pgx = gx, pdg = dg, pdb = db, pex = ex, pedg = edg, pedb = edb)
        {
            NormBackward.GroupNorm(px, pg, pgam, pm, pr, batch, channels, spatial, groups, pgx, pdg, pdb);
            NormBackwardReference.Rows(px, pg, pgam, pm, pr, (long)batch * groups, (long)cpg * spatial,
                (r, i) => (int)(r % groups) * cpg + (int)(i / spatial), channels, pex, pedg, pedb);
        }
        string what = $"group norm backward {batch}x{channels}x{spatial}/{groups} offset {offset}";
        TestUtil.AssertClose(ex, gx, 2e-5f, 1e-4f, what + " dx");
        TestUtil.AssertClose(edg, dg, 1e-4f, 1e-4f, what + " dgamma");
        TestUtil.AssertClose(edb, db, 1e-4f, 1e-4f, what + " dbeta");
    }

    [Theory]
    [InlineData(1, 1, 0f, true)]
    [InlineData(7, 17, 0f, false)]
    [InlineData(33, 320, 0f, true)]
    [InlineData(257, 64, 10f, true)]
    // several runs of rows in the gamma/beta sums, the last one shorter
    [InlineData(2049, 33, 3f, true)]
    [InlineData(1500, 64, 0f, false)]
    public void LayerNormBackward_OddShapes_MatchesDoubleReference(int rows, int n, float offset, bool affine)
    {
        var x = Input(rows * 3 + n, (long)rows * n, offset);
        var g = TestUtil.RandomArray(n + 5, x.Length);
        var gamma = affine ? TestUtil.RandomArray(11, n) : null;
        float[] mean = new float[rows], rstd = new float[rows], y = new float[x.Length];
        fixed (float* px = x, pgam = gamma, py = y, pm = mean, pr = rstd) Norms.LayerNormForward(px, pgam, null, py, rows, n, 1e-5f, pm, pr);
        float[] gx = new float[x.Length], dg = new float[n], db = new float[n];
        float[] ex = new float[x.Length], edg = new float[n], edb = new float[n];
        fixed (float* px = x, pg = g, pgam = gamma, pm = mean, pr = rstd, pgx = gx, pdg = dg, pdb = db, pex = ex, pedg = edg, pedb = edb)
        {
            NormBackward.LayerNorm(px, pg, pgam, pm, pr, rows, n, pgx, pdg, pdb);
            NormBackwardReference.Rows(px, pg, pgam, pm, pr, rows, n, (r, i) => (int)i, n, pex, pedg, pedb);
        }
        string what = $"layer norm backward {rows}x{n} offset {offset}";
        TestUtil.AssertClose(ex, gx, 2e-5f, 1e-4f, what + " dx");
        TestUtil.AssertClose(edg, dg, 1e-4f, 1e-4f, what + " dgamma");
        TestUtil.AssertClose(edb, db, 1e-4f, 1e-4f, what + " dbeta");
    }

    [Theory]
    [InlineData(2, 64, 9, 9, 32)]
    [InlineData(1, 6, 70, 70, 2)]
    public void GroupNormSilu_Inference_MatchesGroupNormThenSilu(int batch, int channels, int h, int w, int groups)
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.FromArray(Input(5, (long)batch * channels * h * w, 3f), batch, channels, h, w);
        var gamma = TestUtil.Random(6, channels); var beta = TestUtil.Random(7, channels);
        var fused = Ops.GroupNormSilu(x, groups, gamma, beta, 1e-6f);
        var plain = Ops.Silu(Ops.GroupNorm(x, groups, gamma, beta, 1e-6f));
        TestUtil.AssertClose(plain, fused, 1e-6f, 1e-6f, "group norm + silu");
    }

    [Fact]
    public void GroupNormSilu_RecordingGradients_Throws()
    {
        using var scope = TensorScope.Begin();
        var x = TestUtil.Random(1, 1, 4, 3, 3);
        x.RequiresGrad = true;
        Assert.Throws<InvalidOperationException>(() => Ops.GroupNormSilu(x, 2, null, null, 1e-5f));
    }
}

[Collection(EngineSettings.Name)]
public class NormThreadTests
{
    [Theory]
    [InlineData(2, 64, 1000, 32)]
    [InlineData(1, 4, 50000, 1)]
    public void GroupNorm_OneVsTwoThreads_BitwiseIdentical(int batch, int channels, int spatial, int groups)
    {
        var x = NormTests.Input(1, (long)batch * channels * spatial, 10f);
        var gamma = TestUtil.RandomArray(2, channels); var beta = TestUtil.RandomArray(3, channels);
        ThreadDeterminism.AssertOneVsTwoIdentical(() =>
        {
            var (y, mean, rstd) = NormTests.GroupNorm(x, gamma, beta, batch, channels, groups, 1e-6f);
            return new[] { ("output", y), ("mean", mean), ("rstd", rstd) };
        });
    }

    [Fact]
    public void LayerNorm_OneVsTwoThreads_BitwiseIdentical()
    {
        var x = NormTests.Input(4, 300L * 320, 5f);
        var gamma = TestUtil.RandomArray(5, 320); var beta = TestUtil.RandomArray(6, 320);
        ThreadDeterminism.AssertOneVsTwoIdentical(() => new[] { ("output", NormTests.LayerNorm(x, gamma, beta, 320, 1e-5f)) });
    }

    [Fact]
    public unsafe void LayerNormBackward_OneVsTwoThreads_BitwiseIdentical()
    {
        const int rows = 3000, n = 72;
        var x = NormTests.Input(7, (long)rows * n, 2f);
        var g = TestUtil.RandomArray(8, x.Length);
        var gamma = TestUtil.RandomArray(9, n);
        float[] mean = new float[rows], rstd = new float[rows], y = new float[x.Length];
        fixed (float* px = x, pgam = gamma, py = y, pm = mean, pr = rstd) Norms.LayerNormForward(px, pgam, null, py, rows, n, 1e-5f, pm, pr);
        ThreadDeterminism.AssertOneVsTwoIdentical(() =>
        {
            float[] gx = new float[x.Length], dg = new float[n], db = new float[n];
            fixed (float* px = x, pg = g, pgam = gamma, pm = mean, pr = rstd, pgx = gx, pdg = dg, pdb = db)
                NormBackward.LayerNorm(px, pg, pgam, pm, pr, rows, n, pgx, pdg, pdb);
            return new[] { ("dx", gx), ("dgamma", dg), ("dbeta", db) };
        });
    }
}
