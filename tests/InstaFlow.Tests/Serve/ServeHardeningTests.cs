// Server regressions from the hardening issue (#12): the per-request work budget, JSON-only bodies (415), the Host
// check against DNS rebinding, lone surrogates answered with 400 (not 500), and an IPv4-mapped loopback --host.
using System.Net;
using System.Text;
using System.Text.Json;
using InstaFlow.Server;

namespace InstaFlow.Tests.Serve;

public sealed class ServeHardeningTests
{
    private static async Task<(HttpStatusCode Status, JsonElement Body)> Post(HttpClient client, HttpContent content)
    {
        using var resp = await client.PostAsync("api/generate", content);
        var text = await resp.Content.ReadAsStringAsync();
        return (resp.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task Generate_2048Square_RefusedByTheDefaultPixelLimit_And2RfDefaultsFitTheBudget()
    {
        await using var run = await RunningServer.StartAsync();
        var (status, body) = await Post(run.Client, RunningServer.Json("""{"prompt": "a big cat", "width": 2048, "height": 2048, "steps": 1}"""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("width", body.GetProperty("field").GetString());
        Assert.Contains("--max-pixels", body.GetProperty("reason").GetString());
        // 2-Rectified Flow's defaults (25 steps) at 512x512, two images, stay within the default budget
        Assert.True(512L * 512 * 2 * (25 + 1) <= ServerOptions.DefaultMaxWorkPixelSteps);
    }

    [Fact]
    public async Task Generate_BatchTimesSteps_CountAgainstTheBudget()
    {
        await using var run = await RunningServer.StartAsync(o => o with { MaxWorkPixelSteps = 64 * 64 * 2 * (2 + 1) });
        var ok = await Post(run.Client, RunningServer.Json("""{"prompt": "a cat", "width": 64, "height": 64, "batch": 2, "steps": 2, "seed": 1}"""));
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        var (status, body) = await Post(run.Client, RunningServer.Json("""{"prompt": "a cat", "width": 64, "height": 64, "batch": 2, "steps": 3, "seed": 1}"""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("pixel-steps", body.GetProperty("error").GetString());
        Assert.Contains("--max-work", body.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData(null)]
    public async Task Generate_NonJsonContentType_Is415(string? contentType)
    {
        await using var run = await RunningServer.StartAsync();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"prompt": "a cross-origin cat"}"""));
        if (contentType != null) content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        var (status, body) = await Post(run.Client, content);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        Assert.Equal("Content-Type", body.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Api_ForeignHostHeader_IsRefusedAndLoopbackNamesAnswer()
    {
        await using var run = await RunningServer.StartAsync();
        using var evil = new HttpRequestMessage(HttpMethod.Get, "api/health");
        evil.Headers.Host = "attacker.example:" + run.Server.Address.Port;
        using var refused = await run.Client.SendAsync(evil);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, refused.StatusCode);
        Assert.Contains("--allowed-hosts", await refused.Content.ReadAsStringAsync());

        using var local = new HttpRequestMessage(HttpMethod.Get, "api/health");
        local.Headers.Host = "localhost:" + run.Server.Address.Port;
        Assert.Equal(HttpStatusCode.OK, (await run.Client.SendAsync(local)).StatusCode);
    }

    [Fact]
    public async Task Api_AllowedHost_Answers()
    {
        await using var run = await RunningServer.StartAsync(o => o with { AllowedHosts = ["instaflow.lan"] });
        using var msg = new HttpRequestMessage(HttpMethod.Get, "api/health");
        msg.Headers.Host = "instaflow.lan";
        Assert.Equal(HttpStatusCode.OK, (await run.Client.SendAsync(msg)).StatusCode);
    }

    [Theory]
    [InlineData("""{"prompt": "\ud800"}""")]
    [InlineData("""{"prompt": "a cat", "negative_prompt": "\udfff x"}""")]
    [InlineData("""{"\ud83d": 1}""")]
    public async Task Generate_LoneSurrogate_Is400NotA500(string json)
    {
        await using var run = await RunningServer.StartAsync();
        var (status, body) = await Post(run.Client, RunningServer.Json(json));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(body.TryGetProperty("error", out _));
    }

    [Fact]
    public async Task Generate_InvalidUtf8Body_Is400()
    {
        await using var run = await RunningServer.StartAsync();
        var bytes = Encoding.UTF8.GetBytes("""{"prompt": "a XX cat"}""");
        int i = Array.IndexOf(bytes, (byte)'X');
        bytes[i] = 0xFF; bytes[i + 1] = 0xFE;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var (status, _) = await Post(run.Client, content);
        Assert.Equal(HttpStatusCode.BadRequest, status);
    }

    [Fact]
    public async Task Start_Ipv4MappedLoopbackHost_ListensOnLoopback()
    {
        await using var run = await RunningServer.StartAsync(o => o with { Host = "::ffff:127.0.0.1" });
        Assert.Equal("127.0.0.1", run.Server.Address.Host);
        Assert.Equal(HttpStatusCode.OK, (await run.Client.GetAsync("api/health")).StatusCode);
    }
}
