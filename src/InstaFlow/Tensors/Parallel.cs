// Parallel loops for the kernels: a job is cut into a fixed number of chunks that depends only on the problem, never on
// the thread count, so results are bitwise identical for 1 and N threads; the chunks run on a few dedicated threads.

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

    // One loop at a time runs on the dedicated workers; a loop started meanwhile on another thread (two server
    // requests, tests in parallel) runs on the thread pool instead.
    private static readonly object Gate = new();
    private static Worker[] _workers = [];
    private static readonly ManualResetEventSlim Done = new(false);

    /// <summary>
    /// Runs body(i) for i in [0, count); each index runs on exactly one thread. A loop inside another loop's body runs
    /// serially on its thread: the outer loop already keeps the cores busy, and a nested loop would wait for helpers
    /// that are busy with the outer one.
    /// </summary>
    /// <remarks>
    /// Each thread claims one index at a time from a shared counter. Parallel.For over the indices hands a thread up
    /// to 16 at once from its own share, and when the machine took that thread's core for a while, the loop waited for
    /// the whole batch: with another process spinning on one of the 2 cores, a UNet step took 4.06-4.61 s that way and
    /// 3.64-3.96 s this way (docs/PERFORMANCE.md).
    /// The other Threads - 1 threads are dedicated helpers; the caller runs indices too. On the thread pool, idle
    /// pool threads looking for work took turns with the busy ones (~29,000 involuntary context switches in 7 VAE
    /// decodes, ~1,700 with the helpers), and a UNet step took 3.52-3.87 s against 3.43-3.64 s (medians of 5,
    /// alternating runs). With another process spinning on one core, the pool's extra threads win a larger share of
    /// the CPU (52.0 against 47.7 CPU s for the same runs), so there the helpers are 2-7 % slower (docs/PERFORMANCE.md).
    /// </remarks>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        int threads = Math.Min(_threads, count);
        if (threads == 1 || _inBody)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        if (!Monitor.TryEnter(Gate))
        {
            ForOnPool(count, body, threads);
            return;
        }
        try
        {
            var workers = WorkersFor(threads - 1);
            var job = new Job(body, count, ExecutionContext.Capture());
            Done.Reset();
            for (int w = 0; w < threads - 1; w++) workers[w].Post(job);
            _inBody = true;
            try { job.RunIndices(); }
            finally { _inBody = false; }
            job.Close();
        }
        finally { Monitor.Exit(Gate); }
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

    private static void ForOnPool(int count, Action<int> body, int threads)
    {
        var job = new Job(body, count, null);
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
        {
            _inBody = true;
            try { job.RunIndices(); }
            finally { _inBody = false; }
        });
        job.ThrowErrors();
    }

    private static Worker[] WorkersFor(int n)
    {
        if (_workers.Length < n)
        {
            var grown = new Worker[n];
            Array.Copy(_workers, grown, _workers.Length);
            for (int i = _workers.Length; i < n; i++) grown[i] = new Worker(i);
            _workers = grown;
        }
        return _workers;
    }

    /// <summary>One loop: the shared index counter, and who is still running its indices.</summary>
    private sealed class Job(Action<int> body, int count, ExecutionContext? context)
    {
        private const int Closed = 1 << 30;
        private int _next = -1;
        // Closed once the caller has run out of indices; the low bits count the helpers inside RunIndices. A helper
        // that wakes after Closed stays out, so the caller never waits for a thread that has nothing left to do.
        private int _state;
        private List<Exception>? _errors;

        public void RunIndices()
        {
            try
            {
                int i;
                while ((i = Interlocked.Increment(ref _next)) < count) body(i);
            }
            catch (Exception e)
            {
                // the other threads stop at their next claim instead of running the remaining indices for nothing
                Volatile.Write(ref _next, count);
                lock (this) (_errors ??= []).Add(e);
            }
        }

        /// <summary>A helper's part: runs indices unless the caller has already closed the loop.</summary>
        public void Join()
        {
            int s = Volatile.Read(ref _state);
            while (true)
            {
                if ((s & Closed) != 0) return;
                int seen = Interlocked.CompareExchange(ref _state, s + 1, s);
                if (seen == s) break;
                s = seen;
            }
            _inBody = true;
            try
            {
                if (context == null) RunIndices();
                else ExecutionContext.Run(context, static j => ((Job)j!).RunIndices(), this);
            }
            finally { _inBody = false; }
            if (Interlocked.Decrement(ref _state) == Closed) Done.Set();
        }

        /// <summary>The caller's end of the loop: waits for the helpers still running indices, then rethrows.</summary>
        public void Close()
        {
            if (Interlocked.Or(ref _state, Closed) != 0) Done.Wait();
            ThrowErrors();
        }

        public void ThrowErrors()
        {
            if (_errors is { } errors) throw new AggregateException(errors);
        }
    }

    /// <summary>A dedicated helper thread: sleeps until a loop is posted, then runs the latest one.</summary>
    /// <remarks>
    /// Spinning for the next loop (up to 100 us or 1 ms before sleeping) made no difference on a quiet machine (UNet
    /// steps 3.43-3.57 s either way) and cost time when another process wanted the core, so the helper only spins as
    /// long as SemaphoreSlim does before it blocks.
    /// </remarks>
    private sealed class Worker
    {
        private Job? _posted;
        private readonly SemaphoreSlim _wake = new(0);

        public Worker(int index)
        {
            new Thread(Loop) { IsBackground = true, Name = $"InstaFlow kernels {index + 1}" }.Start();
        }

        /// <summary>One release per post, so the count stays bounded; a late helper finds the loops it missed closed.</summary>
        public void Post(Job job)
        {
            Volatile.Write(ref _posted, job);
            _wake.Release();
        }

        private void Loop()
        {
            while (true)
            {
                _wake.Wait();
                Interlocked.Exchange(ref _posted, null)?.Join();
            }
        }
    }
}
