// Opt-in per-op timing: while a profile is active on a thread, the tape and the trainer mark the end of every forward
// op, backward rule and optimizer phase (inference calls mark their kernels instead), and the time (and FLOPs) since
// the previous mark go to it.
using System.Diagnostics;

namespace InstaFlow.Tensors.Autograd;

/// <summary>Time and counted FLOPs attributed to one entry (e.g. "backward Conv2d") over all the calls seen.</summary>
public sealed record OpTiming(string Stage, string Op, long Calls, double Seconds, long Flops)
{
    public double Gflops => Seconds > 0 ? Flops / Seconds / 1e9 : 0;
}

/// <summary>
/// Collects <see cref="OpTiming"/>s for the ops its thread runs between <see cref="Start"/> and disposing the handle.
/// Marks partition the wall time: each forward op gets the time since the previous mark, so work done outside
/// recorded ops (drawing noise, ops on tensors without gradients) lands on the next recorded op; the totals add up to
/// the profiled steps. FLOPs come from <see cref="FlopCounter"/>, which the profile enables while it runs.
/// </summary>
public sealed class OpProfile
{
    [ThreadStatic] private static OpProfile? _current;

    private readonly Dictionary<(string Stage, string Op), (long Calls, long Ticks, long Flops)> _entries = new();
    private long _lastTicks, _lastFlops;
    private bool _flopsWereEnabled;

    /// <summary>The profile collecting on this thread, or null (the usual case: marking then costs one null check).</summary>
    internal static OpProfile? Current => _current;

    /// <summary>Starts collecting on this thread; disposing the handle stops (a profile collects on one thread at a time).</summary>
    public IDisposable Start()
    {
        if (_current != null) throw new InvalidOperationException("an OpProfile is already collecting on this thread");
        _current = this;
        _flopsWereEnabled = FlopCounter.Enabled;
        FlopCounter.Enabled = true;
        _lastTicks = Stopwatch.GetTimestamp();
        _lastFlops = FlopCounter.Flops;
        return new Stopper(this);
    }

    /// <summary>Attributes the time and FLOPs since the previous mark to (stage, op).</summary>
    internal void Mark(string stage, string op)
    {
        long now = Stopwatch.GetTimestamp(), flops = FlopCounter.Flops;
        var key = (stage, op);
        _entries.TryGetValue(key, out var e);
        _entries[key] = (e.Calls + 1, e.Ticks + now - _lastTicks, e.Flops + flops - _lastFlops);
        _lastTicks = now;
        _lastFlops = flops;
    }

    /// <summary>Marks on this thread's profile if one is collecting.</summary>
    internal static void MarkCurrent(string stage, string op) => _current?.Mark(stage, op);

    /// <summary>The entries so far, most time first.</summary>
    public IReadOnlyList<OpTiming> Entries() =>
        _entries.Select(kv => new OpTiming(kv.Key.Stage, kv.Key.Op, kv.Value.Calls, kv.Value.Ticks / (double)Stopwatch.Frequency, kv.Value.Flops))
            .OrderByDescending(t => t.Seconds).ToList();

    private sealed class Stopper(OpProfile profile) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            profile.Mark("other", "after the last mark");
            FlopCounter.Enabled = profile._flopsWereEnabled;
            _current = null;
        }
    }
}
