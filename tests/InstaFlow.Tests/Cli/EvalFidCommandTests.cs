// `instaflow eval fid` with the fixture's reduced FID Inception on PNGs written here: the printed FID equals the
// library's on the same images (RGBA read with alpha dropped), identical sets give ~0, and input errors are one line.
using System.Globalization;
using InstaFlow.Evaluation;
using InstaFlow.IO;
using InstaFlow.Models.Inception;
using InstaFlow.Tests.Models;

namespace InstaFlow.Tests.Cli;

public sealed class EvalFidCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fid-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>count random images of size w x h (channels 3 or 4) in a new folder.</summary>
    private string Images(string name, int count, int w, int h, int channels, int seed)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var px = new byte[w * h * channels];
            rng.NextBytes(px);
            Png.Write(Path.Combine(dir, $"{i:D2}.png"), w, h, channels, px);
        }
        return dir;
    }

    private static double Printed(string stdout) =>
        double.Parse(stdout.Trim().Split(' ')[^1], CultureInfo.InvariantCulture);

    [Fact]
    public void EvalFid_PngFolders_PrintsTheLibraryFid()
    {
        var real = Images("real", 4, 40, 32, 3, 1);
        var fake = Images("fake", 3, 48, 48, 4, 2);
        var (code, stdout, err) = CliRunner.Run("eval", "fid", "--weights", FidInceptionTests.Weights, "--real", real, "--fake", fake, "--batch", "2");
        Assert.True(code == 0, err);
        var model = FidInceptionV3.Load(FidInceptionTests.Weights).Model;
        var (rf, ff) = (ImageFile.ListImages([real]), ImageFile.ListImages([fake]));
        double expected = Fid.Compute(Fid.Features(model, rf, 3), 4, Fid.Features(model, ff, 1), 3, model.FeatureSize);
        Assert.True(expected > 0);
        Assert.Equal(expected, Printed(stdout), 1e-6 * expected);
        // progress goes to the test's stderr writer as plain lines, never to the console
        Assert.Contains("fid features real: 4/4 (100%)", err);
        Assert.Contains("fid features generated: 3/3 (100%)", err);
    }

    [Fact]
    public void EvalFid_SameImages_PrintsZero()
    {
        var real = Images("same", 3, 33, 29, 3, 5);
        var files = Directory.GetFiles(real);
        var (code, stdout, err) = CliRunner.Run(["eval", "fid", "--weights", FidInceptionTests.Weights, "--real", real, "--fake", .. files]);
        Assert.True(code == 0, err);
        Assert.Equal(0.0, Printed(stdout), 4);
    }

    [Fact]
    public void EvalFid_OneImage_OneLineError()
    {
        var one = Images("one", 1, 16, 16, 3, 3);
        var two = Images("two", 2, 16, 16, 3, 4);
        CliRunner.AssertUserError(["eval", "fid", "--weights", FidInceptionTests.Weights, "--real", two, "--fake", one], "--fake", "at least 2");
        CliRunner.AssertUserError(["eval", "fid", "--weights", FidInceptionTests.Weights, "--real", Path.Combine(_dir, "missing"), "--fake", two], "missing");
        CliRunner.AssertUserError(["eval", "fid", "--weights", Path.Combine(_dir, "none.safetensors"), "--real", two, "--fake", two], "none.safetensors");
    }
}
