// Deterministic work splitting: a job is cut into a fixed number of chunks that depends only on the problem,
// never on the thread count, so results are bitwise identical for 1 and N threads.
namespace InstaFlow.Tensors;

public static class Par
{
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Threads used by heavy ops (default: all cores). Results do not depend on it.</summary>
    public static int Threads
    {
        get => _threads;
        set => _threads = Math.Max(1, value);
    }

    /// <summary>Whether this thread is running the body of a parallel loop.</summary>
    [ThreadStatic] private static bool _inBody;

    /// <summary>
    /// Runs body(i) for i in [0, count); each index runs on exactly one thread. A loop inside another loop's body runs
    /// serially on its thread: the outer loop already keeps the cores busy, and nested loops would block pool threads
    /// waiting for each other.
    /// </summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (_threads == 1 || count == 1 || _inBody)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        var opts = new ParallelOptions { MaxDegreeOfParallelism = _threads };
        Parallel.For(0, count, opts, i =>
        {
            _inBody = true;
            try { body(i); }
            finally { _inBody = false; }
        });
    }

    /// <summary>Splits [0, n) into ranges of at least minChunk items and runs body(start, end) on them.</summary>
    public static void ForRange(long n, long minChunk, Action<long, long> body)
    {
        if (n <= 0) return;
        long chunks = Math.Max(1, Math.Min(n / Math.Max(1, minChunk), 64));
        if (chunks == 1 || _threads == 1)
        {
            body(0, n);
            return;
        }
        long per = (n + chunks - 1) / chunks;
        For((int)chunks, c =>
        {
            long s = c * per, e = Math.Min(n, s + per);
            if (s < e) body(s, e);
        });
    }
}
