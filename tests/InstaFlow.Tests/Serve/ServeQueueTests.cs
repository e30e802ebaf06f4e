// The bounded queue on the real server: a test hook holds the single generation slot (no sleeps), so a full queue
// answers 429 with Retry-After, and a client that gives up frees its place whether it was waiting or running.
using System.Net;

namespace InstaFlow.Tests.Serve;

public sealed class ServeQueueTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private RunningServer _run = null!;
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task InitializeAsync()
    {
        _run = await RunningServer.StartAsync(o => o with { MaxQueue = 1 });
        // Every job waits at the gate inside the slot until the test opens it (or the job's client cancels).
        _run.Server.Queue.BeforeRun = ct => _gate.Task.WaitAsync(ct);
    }

    public async Task DisposeAsync()
    {
        _gate.TrySetResult();
        await _run.DisposeAsync();
    }

    private Task<HttpResponseMessage> Post(CancellationToken cancellation = default) =>
        _run.Client.PostAsync("api/generate", RunningServer.Json("""{"prompt": "a queue", "seed": 1}"""), cancellation);

    private Task WaitForPending(int n) => _run.WaitForPending(n, Patience);

    /// <summary>Sends a request, cancels it once the queue holds it (queuedAt pending), and waits for its place to be given back.</summary>
    private async Task Abandon(int queuedAt)
    {
        using var cancel = new CancellationTokenSource();
        var abandoned = Post(cancel.Token);
        await WaitForPending(queuedAt);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        await WaitForPending(queuedAt - 1);
    }

    [Fact]
    public async Task FullQueue_429WithRetryAfter_ThenQueuedJobsFinish()
    {
        var running = Post();
        await WaitForPending(1);
        var waiting = Post();
        await WaitForPending(2);

        using var rejected = await Post();
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.True(rejected.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {rejected.Headers.RetryAfter}");
        Assert.Contains("queue is full", await rejected.Content.ReadAsStringAsync());

        _gate.SetResult();
        using var first = await running;
        using var second = await waiting;
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));
        await WaitForPending(0);
    }

    [Fact]
    public async Task CancelledWaitingRequest_FreesItsPlace()
    {
        var running = Post();
        await WaitForPending(1);
        await Abandon(queuedAt: 2);

        var next = Post();
        await WaitForPending(2);
        _gate.SetResult();
        using var a = await running;
        using var b = await next;
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (a.StatusCode, b.StatusCode));
    }

    [Fact]
    public async Task CancelledRunningRequest_FreesTheSlot()
    {
        await Abandon(queuedAt: 1);

        _gate.SetResult();
        using var next = await Post();
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }
}
