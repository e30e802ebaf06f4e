// `instaflow generate --init-image IMG --strength s` on the tiny SD-1.5 model: strength 1 writes the text-to-image
// PNG of the same seed, and the option checks are one error line.
using InstaFlow.IO;

namespace InstaFlow.Tests.Cli;

public sealed class InitImageCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-i2i-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    [Fact]
    public void GenerateInitImage_StrengthOne_WritesTextToImagePng()
    {
        var t2i = Path.Combine(_tmp, "t2i.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "a photo of a cat", "--seed", "42", "-o", t2i);
        Assert.True(code == 0, err);
        var i2i = Path.Combine(_tmp, "i2i.png");
        (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "a photo of a cat", "--seed", "42", "--init-image", t2i, "--strength", "1", "-o", i2i);
        Assert.True(code == 0, err);
        Assert.Contains("vae_encode", err);
        Assert.Equal(Png.Read(t2i).Pixels, Png.Read(i2i).Pixels);
        var half = Path.Combine(_tmp, "half.png");
        (code, _, err) = CliRunner.Run("generate", "--model", Tiny, "a dog", "--seed", "1", "--init-image", t2i, "--strength", "0.5", "-o", half);
        Assert.True(code == 0, err);
    }

    [Fact]
    public void GenerateInitImage_StrengthOutOfRange_OneErrorLine() =>
        CliRunner.AssertUserError(["generate", "--model", Tiny, "x", "--init-image", "a.png", "--strength", "2"], "--strength");
}
