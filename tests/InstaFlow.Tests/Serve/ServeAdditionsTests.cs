// `serve` with a LoRA merged at start-up: the API's image equals the CLI's `generate --lora` image; a bad LoRA file
// stops the start with an error naming it.
using System.Net;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tests.Cli;

namespace InstaFlow.Tests.Serve;

public sealed class ServeAdditionsTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-serve-lora-").FullName;
    private static string Kohya => Path.Combine(TestUtil.Fixtures, "lora", "kohya_lora.safetensors");

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    [Fact]
    public async Task Serve_WithLora_SamePixelsAsCliGenerateWithLora()
    {
        var cliPng = Path.Combine(_tmp, "cli.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", RunningServer.TinyModel, "a red fox", "--seed", "3", "--lora", Kohya, "--lora-scale", "0.7", "--output", cliPng);
        Assert.True(code == 0, err);
        await using var run = await RunningServer.StartAsync(o => o with { Additions = new ModelAdditions { LoraFiles = [Kohya], LoraScale = 0.7f } });
        var msg = new HttpRequestMessage(HttpMethod.Post, "api/generate") { Content = RunningServer.Json("""{"prompt": "a red fox", "seed": 3}""") };
        msg.Headers.Accept.ParseAdd("image/png");
        using var res = await run.Client.SendAsync(msg);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(Png.Read(cliPng).Pixels, Png.Decode(await res.Content.ReadAsByteArrayAsync()).Pixels);
    }

    [Fact]
    public async Task Serve_MissingLora_StartFailsNamingTheFile()
    {
        var missing = Path.Combine(_tmp, "missing.safetensors");
        var e = await Assert.ThrowsAsync<FileNotFoundException>(() => RunningServer.StartAsync(o => o with { Additions = new ModelAdditions { LoraFiles = [missing] } }));
        Assert.Contains("missing.safetensors", e.Message);
    }
}
