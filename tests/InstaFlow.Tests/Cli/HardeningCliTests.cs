// Command-line regressions from the hardening issue (#12): option shapes and values that used to crash or mislead.
namespace InstaFlow.Tests.Cli;

public sealed class HardeningCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-hardcli-").FullName;
    private static string TinyModel => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    private static string Kohya => Path.Combine(TestUtil.Fixtures, "lora", "kohya_lora.safetensors");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Generate_LoraThenPrompt_TakesOneFilePerLoraAndThePromptAsPrompt()
    {
        var png = Path.Combine(_dir, "fox.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", TinyModel, "--lora", Kohya, "a red fox", "--seed", "3", "-o", png);
        Assert.True(code == 0, err);
        Assert.Equal("a red fox", InstaFlow.IO.Png.Read(png).Text["prompt"]);
    }
}
