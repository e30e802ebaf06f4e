// 64-byte-aligned native float storage, recycled through a size-bucketed pool so that steady-state
// steps (the same shapes every iteration) allocate nothing.
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors;

/// <summary>A reference-counted block of native memory holding floats (or raw bytes for other dtypes).</summary>
public sealed unsafe class NativeBuffer
{
    public const int Alignment = 64;

    public readonly long Bytes;
    public byte* Pointer { get; private set; }
    private int _refs = 1;
    private readonly Action<NativeBuffer>? _release;

    private NativeBuffer(byte* p, long bytes, Action<NativeBuffer>? release)
    {
        Pointer = p;
        Bytes = bytes;
        _release = release;
    }

    /// <summary>Wraps memory owned by someone else (e.g. a memory-mapped file); release is called when the last view goes.</summary>
    public static NativeBuffer Wrap(byte* p, long bytes, Action<NativeBuffer>? release) => new(p, bytes, release);

    /// <summary>A read-only, copy-on-write file mapping: its clean pages can be dropped and read back from the file.</summary>
    internal static NativeBuffer WrapFileMapping(byte* p, long bytes, Action<NativeBuffer> release) => new(p, bytes, release) { IsFileMapping = true };

    public bool IsFileMapping { get; private init; }

    public static NativeBuffer Rent(long bytes) => BufferPool.Rent(bytes);

    /// <summary>
    /// A buffer given back to the system when released, never pooled: for large scratch whose size differs per call
    /// site (a pool bucket per size would keep every one of them alive).
    /// </summary>
    public static NativeBuffer RentUnpooled(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes), $"negative buffer size {bytes}");
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, Alignment), Alignment);
        if (p == null) throw new OutOfMemoryException($"could not allocate {bytes} bytes");
        return new NativeBuffer(p, bytes, b => NativeMemory.AlignedFree(b.Pointer));
    }

    internal static NativeBuffer Create(byte* p, long bytes) => new(p, bytes, BufferPool.Return);

    public void AddRef() => Interlocked.Increment(ref _refs);

    public void Release()
    {
        int r = Interlocked.Decrement(ref _refs);
        if (r == 0) _release?.Invoke(this);
        else if (r < 0) throw new InvalidOperationException("NativeBuffer released more times than referenced.");
    }

    internal void Revive() => _refs = 1;
}

/// <summary>
/// Size-class buckets (eight per power of two, at most 12.5% slack): diffusion steps repeat the same shapes, and
/// near-equal sizes (odd latent sizes, concatenated skips) still share buffers.
/// </summary>
public static unsafe class BufferPool
{
    private static readonly ConcurrentDictionary<long, ConcurrentBag<NativeBuffer>> Free = new();
    private static long _pooledBytes;
    private static long _liveBytes;

    /// <summary>Upper bound on idle pooled memory; beyond it returned buffers are freed.</summary>
    public static long MaxPooledBytes { get; set; } = 8L << 30;

    public static long PooledBytes => Interlocked.Read(ref _pooledBytes);
    public static long LiveBytes => Interlocked.Read(ref _liveBytes);

    public static NativeBuffer Rent(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes), $"negative buffer size {bytes}");
        long size = SizeClass(bytes);
        if (Free.TryGetValue(size, out var bag) && bag.TryTake(out var buf))
        {
            Interlocked.Add(ref _pooledBytes, -size);
            Interlocked.Add(ref _liveBytes, size);
            buf.Revive();
            return buf;
        }
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)size, Alignment);
        if (p == null) throw new OutOfMemoryException($"could not allocate {size} bytes");
        Interlocked.Add(ref _liveBytes, size);
        return NativeBuffer.Create(p, size);
    }

    private const int Alignment = NativeBuffer.Alignment;

    /// <summary>The bucket a request falls in: multiples of 64 bytes up to 4 KiB, then 8 classes per octave.</summary>
    public static long SizeClass(long bytes)
    {
        long b = Math.Max(bytes, Alignment);
        if (b <= 4096) return (b + Alignment - 1) / Alignment * Alignment;
        int log = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)b);
        long step = 1L << (log - 3);
        return (b + step - 1) / step * step;
    }

    internal static void Return(NativeBuffer buf)
    {
        Interlocked.Add(ref _liveBytes, -buf.Bytes);
        if (PooledBytes + buf.Bytes > MaxPooledBytes)
        {
            NativeMemory.AlignedFree(buf.Pointer);
            return;
        }
        Interlocked.Add(ref _pooledBytes, buf.Bytes);
        Free.GetOrAdd(buf.Bytes, _ => new ConcurrentBag<NativeBuffer>()).Add(buf);
    }

    /// <summary>Frees every idle buffer (e.g. after loading a model, or between benchmark cases).</summary>
    public static void Trim()
    {
        Kernels.PackArena.Trim();
        foreach (var (size, bag) in Free)
            while (bag.TryTake(out var b))
            {
                Interlocked.Add(ref _pooledBytes, -size);
                NativeMemory.AlignedFree(b.Pointer);
            }
    }
}
