// Par.For's contract: every index runs exactly once, on as many threads as asked; nested loops run on their caller's
// thread; a body's exception reaches the caller and stops the other threads' claims; the dedicated helpers see the
// caller's async-local settings, and loops started on two threads at once both complete.
using System.Collections.Concurrent;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public class ParTests
{
    private static T WithThreads<T>(int threads, Func<T> run)
    {
        int saved = Par.Threads;
        try
        {
            Par.Threads = threads;
            return run();
        }
        finally { Par.Threads = saved; }
    }

    [Theory]
    [InlineData(1, 1000)]
    [InlineData(2, 1000)]
    [InlineData(2, 2)]
    [InlineData(4, 3)]
    [InlineData(2, 1)]
    public void For_AnyThreadsAndCount_RunsEveryIndexExactlyOnce(int threads, int count)
    {
        var runs = WithThreads(threads, () =>
        {
            var hits = new int[count];
            Par.For(count, i => Interlocked.Increment(ref hits[i]));
            return hits;
        });
        Assert.True(runs.All(h => h == 1), $"indices not run exactly once: {string.Join(",", runs.Select((h, i) => (h, i)).Where(p => p.h != 1).Take(10))}");
    }

    [Fact]
    public void For_NestedLoop_RunsOnTheOuterBodysThread()
    {
        var mismatches = WithThreads(2, () =>
        {
            var bad = new ConcurrentBag<int>();
            Par.For(8, i =>
            {
                int outer = Environment.CurrentManagedThreadId;
                Par.For(16, j => { if (Environment.CurrentManagedThreadId != outer) bad.Add(i * 16 + j); });
            });
            return bad.Count;
        });
        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void For_BodyThrows_ExceptionReachesCaller()
    {
        var e = Assert.Throws<AggregateException>(() => WithThreads(2, () =>
        {
            Par.For(100, i => { if (i == 37) throw new InvalidOperationException("index 37"); });
            return 0;
        }));
        Assert.Contains(e.Flatten().InnerExceptions, x => x is InvalidOperationException { Message: "index 37" });
    }

    [Fact]
    public void For_BodyThrows_OtherThreadsStopClaiming()
    {
        // index 0 throws at once; the rest sleep 1 ms each, so running them all would take the other thread ~1 s
        int ran = 0;
        Assert.Throws<AggregateException>(() => WithThreads(2, () =>
        {
            Par.For(1000, i =>
            {
                if (i == 0) throw new InvalidOperationException("index 0");
                Interlocked.Increment(ref ran);
                Thread.Sleep(1);
            });
            return 0;
        }));
        Assert.True(ran < 900, $"{ran} of 999 indices ran after index 0 threw");
    }

    private static readonly AsyncLocal<int> Setting = new();

    [Fact]
    public void For_AsyncLocalSetInCaller_SeenByEveryIndex()
    {
        var seen = WithThreads(2, () =>
        {
            Setting.Value = 42;
            var values = new int[64];
            Par.For(64, i => { values[i] = Setting.Value; Thread.SpinWait(1000); });
            return values;
        });
        Assert.True(seen.All(v => v == 42), $"indices that saw another value: {string.Join(",", seen.Select((v, i) => (v, i)).Where(p => p.v != 42).Take(10))}");
    }

    [Fact]
    public void For_ManyShortLoops_RunEveryIndexExactlyOnce()
    {
        // back-to-back two-index loops: a helper that wakes late must not run a closed loop's indices or miss a new one
        var bad = WithThreads(2, () =>
        {
            int wrong = 0;
            var hits = new int[2];
            for (int loop = 0; loop < 20000; loop++)
            {
                hits[0] = hits[1] = 0;
                Par.For(2, i => Interlocked.Increment(ref hits[i]));
                if (hits[0] != 1 || hits[1] != 1) wrong++;
            }
            return wrong;
        });
        Assert.Equal(0, bad);
    }

    [Fact]
    public void For_LoopsOnTwoThreadsAtOnce_BothRunEveryIndexExactlyOnce()
    {
        var bad = WithThreads(2, () =>
        {
            int wrong = 0;
            var callers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
            {
                for (int loop = 0; loop < 300; loop++)
                {
                    var hits = new int[50];
                    Par.For(50, i => Interlocked.Increment(ref hits[i]));
                    if (hits.Any(h => h != 1)) Interlocked.Increment(ref wrong);
                }
            })).ToList();
            callers.ForEach(t => t.Start());
            callers.ForEach(t => t.Join());
            return wrong;
        });
        Assert.Equal(0, bad);
    }
}
