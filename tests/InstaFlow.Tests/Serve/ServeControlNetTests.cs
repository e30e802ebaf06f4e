// `serve --controlnet`: the API takes a control image (base64 PNG) and answers with the image `generate --controlnet`
// makes from the same parameters; the page's model info says a ControlNet is there; bad control fields are 400s.
using System.Net;
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tests.Cli;

namespace InstaFlow.Tests.Serve;

public sealed class ServeControlNetTests : IAsyncLifetime
{
    private static string ControlNetDir => Path.Combine(TestUtil.Fixtures, "controlnet", "controlnet");
    private RunningServer _run = null!;
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-serve-cn-").FullName;

    public async Task InitializeAsync() =>
        _run = await RunningServer.StartAsync(o => o with { Additions = new ModelAdditions { ControlNetDir = ControlNetDir } });

    public async Task DisposeAsync()
    {
        await _run.DisposeAsync();
        Directory.Delete(_tmp, recursive: true);
    }

    private static byte[] ControlPng()
    {
        var rng = new Random(5);
        var px = new byte[16 * 24 * 3];
        rng.NextBytes(px);
        return Png.Encode(24, 16, 3, px);
    }

    [Fact]
    public async Task Generate_ControlImage_SamePixelsAsCliWithControlNet()
    {
        var control = Path.Combine(_tmp, "control.png");
        File.WriteAllBytes(control, ControlPng());
        var cliPng = Path.Combine(_tmp, "cli.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", RunningServer.TinyModel, "a house", "--controlnet", ControlNetDir,
            "--control-image", control, "--control-scale", "0.7", "--seed", "3", "--steps", "2", "--guidance", "2", "--output", cliPng);
        Assert.True(code == 0, err);

        var body = JsonSerializer.Serialize(new { prompt = "a house", control_image = Convert.ToBase64String(ControlPng()), control_scale = 0.7, seed = 3, steps = 2, guidance = 2 });
        using var res = await _run.Client.PostAsync("api/generate", RunningServer.Json(body));
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var api = Png.Decode(Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!));
        var cli = Png.Read(cliPng);
        Assert.Equal((24, 16), (api.Width, api.Height));
        Assert.Equal(cli.Pixels, api.Pixels);
        Assert.Equal(cli.Text["parameters"], api.Text["parameters"]);
        Assert.Equal("0.7", api.Text["control_scale"]);

        using var info = JsonDocument.Parse(await _run.Client.GetStringAsync("api/model"));
        Assert.True(info.RootElement.GetProperty("control_net").GetBoolean());
    }

    [Theory]
    [InlineData("""{"prompt": "a", "control_image": "not base64!"}""", "control_image", "base64")]
    [InlineData("""{"prompt": "a", "control_image": "AAAA"}""", "control_image", "usable image")]
    [InlineData("""{"prompt": "a", "control_scale": 0.5}""", "control_scale", "needs a control_image")]
    public async Task Generate_BadControlFields_400NamingTheField(string body, string field, string reason)
    {
        using var res = await _run.Client.PostAsync("api/generate", RunningServer.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Equal(field, doc.RootElement.GetProperty("field").GetString());
        Assert.Contains(reason, doc.RootElement.GetProperty("reason").GetString());
    }
}
