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
    /// <remarks>
    /// Each thread claims one index at a time from a shared counter. Parallel.For over the indices hands a thread up
    /// to 16 at once from its own share, and when the machine took that thread's core for a while, the loop waited for
    /// the whole batch: with another process spinning on one of the 2 cores, a UNet step took 4.06-4.61 s that way and
    /// 3.64-3.96 s this way (the same 2.32-2.41 s on a quiet machine; docs/PERFORMANCE.md).
    /// </remarks>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (_threads == 1 || count == 1 || _inBody)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        var opts = new ParallelOptions { MaxDegreeOfParallelism = _threads };
        int next = -1;
        Parallel.For(0, Math.Min(_threads, count), opts, _ =>
        {
            _inBody = true;
            try
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count) body(i);
            }
            catch
            {
                // the other threads stop at their next claim instead of running the remaining indices for nothing
                Volatile.Write(ref next, count);
                throw;
            }
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
