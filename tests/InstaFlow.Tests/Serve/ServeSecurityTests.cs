// Who may use the server: anything but loopback needs an API key (the server refuses to start otherwise, with one
// line saying why), and with a key set every /api call must send it, as a Bearer token or X-API-Key.
using System.Net;
using InstaFlow.Server;
using InstaFlow.Tests.Cli;

namespace InstaFlow.Tests.Serve;

public sealed class ServeSecurityTests
{
    private const string Key = "s3cret-key-for-tests";

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("192.168.1.20")]
    public async Task NonLoopbackWithoutKey_RefusesToStart(string host)
    {
        var e = await Assert.ThrowsAsync<InvalidInputException>(() => InstaFlowServer.StartAsync(new ServerOptions { ModelDir = RunningServer.TinyModel, Host = host, Port = 0 }));
        Assert.Contains("--api-key", e.Message);
        Assert.Contains("network", e.Message);
    }

    [Fact]
    public void Cli_NonLoopbackWithoutKey_OneLineError() =>
        CliRunner.AssertUserError(new[] { "serve", "--model", RunningServer.TinyModel, "--host", "0.0.0.0", "--port", "0" }, "refusing to listen on 0.0.0.0 without --api-key");

    [Fact]
    public void Cli_HostNotAnAddress_OneLineError() =>
        CliRunner.AssertUserError(new[] { "serve", "--model", RunningServer.TinyModel, "--host", "my host" }, "--host my host is not an IP address");

    [Fact]
    public async Task ApiKey_EnforcedOnEveryApiCall()
    {
        await using var run = await RunningServer.StartAsync(o => o with { ApiKey = Key });
        async Task<HttpStatusCode> Send(HttpMethod method, string path, string? header = null, string? value = null)
        {
            using var msg = new HttpRequestMessage(method, path);
            if (method == HttpMethod.Post) msg.Content = RunningServer.Json("""{"prompt": "a key"}""");
            if (header != null) msg.Headers.TryAddWithoutValidation(header, value);
            using var res = await run.Client.SendAsync(msg);
            return res.StatusCode;
        }

        foreach (var path in new[] { "api/health", "api/model" })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, await Send(HttpMethod.Get, path));
            Assert.Equal(HttpStatusCode.Unauthorized, await Send(HttpMethod.Get, path, "Authorization", "Bearer " + Key + "x"));
            Assert.Equal(HttpStatusCode.Unauthorized, await Send(HttpMethod.Get, path, "X-API-Key", Key[..^1]));
            Assert.Equal(HttpStatusCode.OK, await Send(HttpMethod.Get, path, "Authorization", "Bearer " + Key));
            Assert.Equal(HttpStatusCode.OK, await Send(HttpMethod.Get, path, "X-API-Key", Key));
        }
        Assert.Equal(HttpStatusCode.Unauthorized, await Send(HttpMethod.Post, "api/generate"));
        Assert.Equal(HttpStatusCode.OK, await Send(HttpMethod.Post, "api/generate", "X-API-Key", Key));
        // The page itself holds nothing secret; it asks for the key.
        Assert.Equal(HttpStatusCode.OK, await Send(HttpMethod.Get, ""));
    }

    [Fact]
    public async Task NonLoopbackWithKey_Starts()
    {
        await using var run = await RunningServer.StartAsync(o => o with { Host = "0.0.0.0", ApiKey = Key });
        run.Client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        var port = run.Server.Address.Port;
        Assert.Contains("\"status\":\"ok\"", await run.Client.GetStringAsync($"http://127.0.0.1:{port}/api/health"));
    }
}
