// The bounded queue in front of a loaded model: one generation runs at a time, at most MaxWaiting requests wait
// for it, and a waiting or running job whose client went away gives up its place.
namespace InstaFlow.Server;

public sealed class GenerationQueue(int maxWaiting)
{
    private readonly SemaphoreSlim _slot = new(1, 1);
    private int _pending;
    private double _averageSeconds = 1;

    public int MaxWaiting { get; } = maxWaiting;

    /// <summary>Jobs admitted and not finished: the running one plus those waiting.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>
    /// Runs inside the slot before each job. Tests use it to hold the slot open deterministically (await a gate);
    /// it gets the job's cancellation token, so a cancelled client releases a held slot too.
    /// </summary>
    public Func<CancellationToken, Task>? BeforeRun { get; set; }

    /// <summary>Seconds a new client might wait: the jobs ahead of it times a running average of job duration.</summary>
    public int RetryAfterSeconds => (int)Math.Clamp(Math.Ceiling(Math.Max(Pending, 1) * Volatile.Read(ref _averageSeconds)), 1, 3600);

    /// <summary>Waits for the running job to end and keeps the slot, so nothing runs after a shutdown frees the model.</summary>
    public Task CloseAsync() => _slot.WaitAsync();

    /// <summary>
    /// Runs work(cancellation) on its own thread when the slot is free. Throws QueueFullException when MaxWaiting jobs
    /// are already waiting, and OperationCanceledException when the token fires while waiting or running.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, T> work, CancellationToken cancellation)
    {
        if (Interlocked.Increment(ref _pending) > MaxWaiting + 1)
        {
            Interlocked.Decrement(ref _pending);
            throw new QueueFullException(RetryAfterSeconds);
        }
        try
        {
            await _slot.WaitAsync(cancellation);
            try
            {
                if (BeforeRun is { } hook) await hook(cancellation);
                var started = DateTime.UtcNow;
                // A dedicated thread, not a pool thread: a generation holds its thread for seconds, and kernel loops
                // that run on the pool (while another run holds Par's helpers) queued from a pool thread go to that
                // thread's local queue, which the pool serves before its global one; that starved Kestrel's socket
                // callbacks (a dropped client was never noticed, /api/health waited for the job).
                var result = await Task.Factory.StartNew(() => work(cancellation), cancellation, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                var seconds = (DateTime.UtcNow - started).TotalSeconds;
                Volatile.Write(ref _averageSeconds, 0.7 * Volatile.Read(ref _averageSeconds) + 0.3 * seconds);
                return result;
            }
            finally
            {
                _slot.Release();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
        }
    }
}

public sealed class QueueFullException(int retryAfterSeconds)
    : Exception($"the generation queue is full; retry in about {retryAfterSeconds} s")
{
    public int RetryAfterSeconds { get; } = retryAfterSeconds;
}
