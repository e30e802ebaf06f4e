// Starts the real `instaflow serve` server on a free loopback port with the tiny model, with an HttpClient aimed
// at it; disposing stops both.
using InstaFlow.Server;

namespace InstaFlow.Tests.Serve;

public sealed class RunningServer : IAsyncDisposable
{
    /// <summary>
    /// Waits until the queue holds n jobs (running or waiting). It polls without holding a thread: the server runs in
    /// this process, and a spinning wait takes one of the two pool threads, so Kestrel's callbacks (noticing a dropped
    /// client) could wait ~0.9 s for the pool to grow.
    /// </summary>
    public async Task WaitForPending(int n, TimeSpan timeout) =>
        Assert.True(await Until(() => Server.Queue.Pending == n, timeout), $"queue never reached {n} pending (has {Server.Queue.Pending})");

    /// <summary>Polls condition every 2 ms, without blocking a thread, until it holds or timeout passes.</summary>
    public static async Task<bool> Until(Func<bool> condition, TimeSpan timeout)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(2);
        }
        return true;
    }

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
