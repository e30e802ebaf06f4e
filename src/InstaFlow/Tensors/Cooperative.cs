// Cooperative cancellation inside a network's forward pass: a run sets its token for the current thread, and the
// UNet and VAE check it between blocks, so a dropped request stops within one block rather than one whole step.
namespace InstaFlow.Tensors;

public static class Cooperative
{
    // Thread-static, not async-local: a forward pass runs synchronously on the thread that started the run (kernels
    // fan out to workers but the block loop stays here), and a thread-static read is cheap enough for every block.
    [ThreadStatic] private static CancellationToken t_token;

    /// <summary>Makes <paramref name="token"/> the one checked on this thread until the returned scope is disposed.</summary>
    public static Scope Use(CancellationToken token)
    {
        var previous = t_token;
        t_token = token;
        return new Scope(previous);
    }

    /// <summary>Throws OperationCanceledException when the current run's token is cancelled; called between blocks.</summary>
    public static void ThrowIfCancellationRequested() => t_token.ThrowIfCancellationRequested();

    public readonly struct Scope(CancellationToken previous) : IDisposable
    {
        public void Dispose() => t_token = previous;
    }
}
