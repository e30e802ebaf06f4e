// Counts the multiply-add FLOPs of the heavy ops (GEMM, conv, attention) while enabled, so benchmarks report
// achieved GFLOP/s from the work actually done rather than from hand-written estimates.
namespace InstaFlow.Tensors;

public static class FlopCounter
{
    private static long _flops;

    public static bool Enabled { get; set; }
    public static long Flops => Interlocked.Read(ref _flops);

    public static void Reset() => Interlocked.Exchange(ref _flops, 0);

    internal static void Add(long flops)
    {
        if (Enabled) Interlocked.Add(ref _flops, flops);
    }
}
