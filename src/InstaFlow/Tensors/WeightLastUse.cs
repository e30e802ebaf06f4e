// The last use of a network's weights in a one-shot run: inside this scope, Linear and Conv2d hand a memory-mapped
// weight's file pages back to the OS as soon as the kernel has packed it, so a single UNet step holds one layer of
// the file at a time instead of all of it (the pages stay in the OS page cache; nothing is re-read).
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors;

public static unsafe partial class WeightLastUse
{
    [ThreadStatic] private static int _depth;

    /// <summary>
    /// Marks the enclosed forward pass as the final read of every weight it touches: call it only when the weights
    /// are released right after (no later step, image or batch may read them again).
    /// </summary>
    public static IDisposable Begin() => new Scope();

    internal static bool Active => _depth > 0;

    private sealed class Scope : IDisposable
    {
        private bool _done;
        public Scope() => _depth++;
        public void Dispose() { if (!_done) { _done = true; _depth--; } }
    }

    /// <summary>Drops the whole pages of a file-mapped tensor's bytes (Linux; elsewhere nothing happens).</summary>
    internal static void DropPages(Tensor t)
    {
        if (!Active || !OperatingSystem.IsLinux() || !t.IsFileMapped) return;
        long page = Environment.SystemPageSize;
        long start = (long)t.Stored.Pointer, end = start + t.Numel * t.ElementSize;
        // Only pages wholly inside the tensor: its neighbours in the file may still be needed.
        long first = (start + page - 1) / page * page, last = end / page * page;
        if (last > first) madvise((void*)first, (nuint)(last - first), MadvDontNeed);
    }

    private const int MadvDontNeed = 4;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(void* address, nuint length, int advice);
}
