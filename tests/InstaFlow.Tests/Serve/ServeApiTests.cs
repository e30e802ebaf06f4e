// POST /api/generate, /api/model and /api/health on the real server with the tiny model: the PNG matches the CLI's
// pixel for pixel, batches carry one seed per image, and bad bodies get a 400 that names the field.
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Tests.Cli;

namespace InstaFlow.Tests.Serve;

public sealed class ServeApiTests : IAsyncLifetime
{
    private RunningServer _run = null!;
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-serve-").FullName;

    public async Task InitializeAsync() => _run = await RunningServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _run.DisposeAsync();
        Directory.Delete(_tmp, recursive: true);
    }

    private Task<HttpResponseMessage> Post(string body, string accept = "application/json")
    {
        var msg = new HttpRequestMessage(HttpMethod.Post, "api/generate") { Content = RunningServer.Json(body) };
        msg.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        return _run.Client.SendAsync(msg);
    }

    [Fact]
    public async Task Generate_AcceptPng_SamePixelsAndParametersAsCli()
    {
        var cliPng = Path.Combine(_tmp, "cli.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", RunningServer.TinyModel, "a red fox", "--negative-prompt", "blurry",
            "--steps", "2", "--guidance", "1.5", "--seed", "7", "--width", "24", "--height", "16", "--output", cliPng);
        Assert.True(code == 0, err);

        using var res = await Post("""{"prompt": "a red fox", "negative_prompt": "blurry", "steps": 2, "guidance": 1.5, "seed": 7, "width": 24, "height": 16}""", "image/png");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("image/png", res.Content.Headers.ContentType?.MediaType);
        var api = Png.Decode(await res.Content.ReadAsByteArrayAsync());
        var cli = Png.Read(cliPng);
        Assert.Equal((cli.Width, cli.Height, cli.Channels), (api.Width, api.Height, api.Channels));
        Assert.Equal(cli.Pixels, api.Pixels);
        Assert.Equal(cli.Text["parameters"], api.Text["parameters"]);
        Assert.Equal("7", api.Text["seed"]);
    }

    // One seed policy and one generation path: a batch from the CLI and from the API is the same images, pixel for pixel.
    [Fact]
    public async Task Generate_GuidedBatchOfTwo_SameImagesThroughCliAndApi()
    {
        var cliPng = Path.Combine(_tmp, "batch.png");
        var (code, _, err) = CliRunner.Run("generate", "--model", RunningServer.TinyModel, "two owls", "--negative-prompt", "blurry",
            "--steps", "3", "--guidance", "2", "--seed", "40", "--batch", "2", "--output", cliPng);
        Assert.True(code == 0, err);

        using var res = await Post("""{"prompt": "two owls", "negative_prompt": "blurry", "steps": 3, "guidance": 2, "seed": 40, "batch": 2}""");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var api = doc.RootElement.GetProperty("images").EnumerateArray().Select(i => Png.Decode(Convert.FromBase64String(i.GetString()!))).ToArray();
        for (int i = 0; i < 2; i++)
        {
            var cli = Png.Read(Path.Combine(_tmp, $"batch-{i}.png"));
            Assert.Equal(cli.Pixels, api[i].Pixels);
            Assert.Equal(cli.Text["parameters"], api[i].Text["parameters"]);
            Assert.Equal((40 + i).ToString(System.Globalization.CultureInfo.InvariantCulture), cli.Text["seed"]);
        }
    }

    [Fact]
    public async Task Generate_JsonBatch_OneSeedPerImageEachReproducible()
    {
        using var res = await Post("""{"prompt": "two owls", "seed": 100, "batch": 2}""");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal(new ulong[] { 100, 101 }, root.GetProperty("seeds").EnumerateArray().Select(s => s.GetUInt64()));
        Assert.Equal((16, 16), (root.GetProperty("width").GetInt32(), root.GetProperty("height").GetInt32()));
        foreach (var stage in new[] { "queue", "text_encoder", "unet_step0", "vae_decode", "png_encode" })
            Assert.True(root.GetProperty("timings").GetProperty(stage).GetDouble() >= 0, stage);
        var images = root.GetProperty("images").EnumerateArray().Select(i => Png.Decode(Convert.FromBase64String(i.GetString()!))).ToArray();
        Assert.Equal(2, images.Length);
        Assert.Equal("101", images[1].Text["seed"]);

        using var alone = await Post("""{"prompt": "two owls", "seed": 101}""", "image/png");
        Assert.Equal(images[1].Pixels, Png.Decode(await alone.Content.ReadAsByteArrayAsync()).Pixels);
    }

    [Theory]
    [InlineData("""{"steps": 1}""", "prompt", "required")]
    [InlineData("""{"prompt": "  "}""", "prompt", "empty")]
    [InlineData("""{"prompt": 5}""", "prompt", "string")]
    [InlineData("""{"prompt": "a", "steps": 0}""", "steps", "between 1 and 100")]
    [InlineData("""{"prompt": "a", "steps": 101}""", "steps", "between 1 and 100")]
    [InlineData("""{"prompt": "a", "steps": 1.5}""", "steps", "whole number")]
    [InlineData("""{"prompt": "a", "steps": "2"}""", "steps", "whole number")]
    [InlineData("""{"prompt": "a", "guidance": true}""", "guidance", "number")]
    [InlineData("""{"prompt": "a", "guidance": 31}""", "guidance", "between 0 and 30")]
    [InlineData("""{"prompt": "a", "width": 20}""", "width", "multiple of 8")]
    [InlineData("""{"prompt": "a", "height": 4096}""", "height", "between 8 and 2048")]
    [InlineData("""{"prompt": "a", "batch": 9}""", "batch", "between 1 and 8")]
    [InlineData("""{"prompt": "a", "seed": -1}""", "seed", "whole number")]
    [InlineData("""{"prompt": "a", "sampler": "euler"}""", "sampler", "unknown field")]
    [InlineData("""[1, 2]""", null, "JSON object")]
    [InlineData("""{"prompt": "a",""", null, "not valid JSON")]
    public async Task Generate_BadBody_400NamesField(string body, string? field, string reason)
    {
        using var res = await Post(body);
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal(field, root.GetProperty("field").GetString());
        Assert.Contains(reason, root.GetProperty("reason").GetString());
        Assert.Contains(reason, root.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Generate_BodyOverLimit_413()
    {
        // the default limit leaves room for a base64 image; a server with a small one shows the 413
        await using var small = await RunningServer.StartAsync(o => o with { MaxRequestBodyBytes = 65536 });
        using var res = await small.Client.PostAsync("api/generate", RunningServer.Json($$"""{"prompt": "{{new string('a', 70_000)}}"}"""));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, res.StatusCode);
        Assert.Contains("larger than 65536 bytes", await res.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Model_DescribesDefaultsAndSizes()
    {
        using var doc = JsonDocument.Parse(await _run.Client.GetStringAsync("api/model"));
        var m = doc.RootElement;
        Assert.Equal("tiny-sd15", m.GetProperty("name").GetString());
        Assert.Equal("UNet2DConditionModel", m.GetProperty("components").GetProperty("unet").GetString());
        Assert.Equal(1, m.GetProperty("default_steps").GetInt32());
        Assert.Equal(0, m.GetProperty("default_guidance").GetDouble());
        Assert.Equal(16, m.GetProperty("default_width").GetInt32());
        Assert.Contains(m.GetProperty("sample_sizes").EnumerateArray(), s => s.GetProperty("width").GetInt32() == 16 && s.GetProperty("height").GetInt32() == 16);
    }

    [Fact]
    public async Task HealthAndPage_Served()
    {
        Assert.Contains("\"status\":\"ok\"", await _run.Client.GetStringAsync("api/health"));
        var page = await _run.Client.GetStringAsync("");
        Assert.Contains("id=\"generate\"", page);
        using var js = await _run.Client.GetAsync("app.js");
        Assert.Equal("text/javascript", js.Content.Headers.ContentType?.MediaType);
    }
}
