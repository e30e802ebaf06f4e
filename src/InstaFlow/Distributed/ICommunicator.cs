// The collective operations data-parallel training needs from "a world of N ranks", and the one-rank world that
// every trainer uses when it was not started by an MPI launcher.
namespace InstaFlow.Distributed;

/// <summary>A fixed group of processes (ranks 0..Size-1) that take part in every collective call in the same order.</summary>
public interface ICommunicator : IDisposable
{
    int Rank { get; }
    int Size { get; }

    /// <summary>Replaces data on every rank by the element-wise sum over all ranks (float32, in place).</summary>
    void AllReduceSum(Span<float> data);

    /// <summary>Copies root's bytes into data on every other rank.</summary>
    void Broadcast(Span<byte> data, int root = 0);

    /// <summary>Copies root's floats into data on every other rank.</summary>
    void Broadcast(Span<float> data, int root = 0);

    void Barrier();

    /// <summary>Ends every rank of the job with this exit code (the launcher kills the others); does not return.</summary>
    void Abort(int exitCode);
}

/// <summary>A world of one rank: collectives are no-ops.</summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    public static readonly SingleProcessCommunicator Instance = new();

    public int Rank => 0;
    public int Size => 1;
    public void AllReduceSum(Span<float> data) { }
    public void Broadcast(Span<byte> data, int root = 0) => CheckRoot(root);
    public void Broadcast(Span<float> data, int root = 0) => CheckRoot(root);
    public void Barrier() { }
    public void Abort(int exitCode) => Environment.Exit(exitCode);
    public void Dispose() { }

    private static void CheckRoot(int root)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), $"a one-rank world has no rank {root}");
    }
}
