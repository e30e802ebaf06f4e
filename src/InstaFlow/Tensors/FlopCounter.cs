// Counts the multiply-add FLOPs of the heavy ops (GEMM, conv, attention; forward and backward) while enabled, so
// benchmarks report achieved GFLOP/s from the work actually done rather than from hand-written estimates.
namespace InstaFlow.Tensors;

/// <summary>
/// Per thread: ops add their FLOPs on the thread that calls them (kernels may fan out, the op call does not), so a
/// benchmark counts only its own work even when other threads run ops at the same time.
/// </summary>
public static class FlopCounter
{
    [ThreadStatic] private static long _flops;
    [ThreadStatic] private static bool _enabled;

    public static bool Enabled { get => _enabled; set => _enabled = value; }
    public static long Flops => _flops;

    public static void Reset() => _flops = 0;

    internal static void Add(long flops)
    {
        if (_enabled) _flops += flops;
    }
}
