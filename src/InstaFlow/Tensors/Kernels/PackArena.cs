// One reusable buffer for packed weights (conv A panels, Linear B panels, Winograd U matrices). Every layer packs its
// weights into the same memory: pooled per size class instead, one SD-1.5 image kept ~0.2 GB of stale packs alive.
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors.Kernels;

internal static unsafe class PackArena
{
    private static NativeBuffer? _idle;

    /// <summary>
    /// A buffer of at least bytes: the idle one when it is large enough, else a new one (the smaller idle one is
    /// freed). Releasing the buffer hands it back here.
    /// </summary>
    public static NativeBuffer Rent(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes), $"negative buffer size {bytes}");
        var idle = Interlocked.Exchange(ref _idle, null);
        if (idle != null)
        {
            if (idle.Bytes >= bytes) { idle.Revive(); return idle; }
            Free(idle);
        }
        long size = BufferPool.SizeClass(bytes);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)size, NativeBuffer.Alignment);
        if (p == null) throw new OutOfMemoryException($"could not allocate {size} bytes for packed weights");
        return NativeBuffer.Wrap(p, size, Return);
    }

    /// <summary>Keeps the larger of the returned and the idle buffer (concurrent callers may each have had one).</summary>
    private static void Return(NativeBuffer buf)
    {
        while (true)
        {
            var idle = Volatile.Read(ref _idle);
            if (idle != null && idle.Bytes >= buf.Bytes) { Free(buf); return; }
            if (Interlocked.CompareExchange(ref _idle, buf, idle) == idle)
            {
                if (idle != null) Free(idle);
                return;
            }
        }
    }

    /// <summary>Gives the idle buffer back to the system (with <see cref="BufferPool.Trim"/>).</summary>
    public static void Trim()
    {
        var idle = Interlocked.Exchange(ref _idle, null);
        if (idle != null) Free(idle);
    }

    private static void Free(NativeBuffer buf) => NativeMemory.AlignedFree(buf.Pointer);
}
