// Starts the real `instaflow serve` server on a free loopback port with the tiny model, with an HttpClient aimed
// at it; disposing stops both.
using InstaFlow.Server;

namespace InstaFlow.Tests.Serve;

public sealed class RunningServer : IAsyncDisposable
{
    public static string TinyModel => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public required InstaFlowServer Server { get; init; }
    public required HttpClient Client { get; init; }

    public static async Task<RunningServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null)
    {
        var options = new ServerOptions { ModelDir = TinyModel, Port = 0 };
        var server = await InstaFlowServer.StartAsync(configure?.Invoke(options) ?? options);
        return new RunningServer { Server = server, Client = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) } };
    }

    public static StringContent Json(string body) => new(body, System.Text.Encoding.UTF8, "application/json");

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
