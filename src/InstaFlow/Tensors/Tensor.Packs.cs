// A weight tensor's packed copies (GEMM panels or Winograd-transformed matrices) for inference with frozen weights:
// made on first use, dropped whenever a writable pointer to the tensor is handed out or the tensor is disposed.
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public sealed unsafe partial class Tensor
{
    // One slot per layout (a 3x3 conv weight may run direct at one image size and Winograd at another).
    private WeightPack?[]? _packs;
    // Installing and dropping packs is rare (once per weight, or on a write): one lock for all tensors, so that the
    // many activation tensors do not each carry a lock object.
    private static readonly object PackLock = new();

    /// <summary>
    /// Largest number of rows (tokens, or pixels over the batch) of a Linear/Conv2d call for which this weight keeps a
    /// packed copy; 0 (the default) keeps none. Set through <see cref="Nn.WeightPacking"/>.
    /// </summary>
    internal int PackMaxRows { get; set; }

    /// <summary>The packed copy of this layout, or null.</summary>
    internal WeightPack? FindPack(WeightPackKind kind) => Volatile.Read(ref _packs)?[(int)kind];

    /// <summary>Keeps pack unless another thread installed one of the same layout first (then pack is freed and that one returned).</summary>
    internal WeightPack InstallPack(WeightPack pack)
    {
        lock (PackLock)
        {
            if (_buffer == null) { pack.Dispose(); throw new ObjectDisposedException(nameof(Tensor), $"tensor {Describe()} was disposed"); }
            var packs = _packs ?? new WeightPack?[WeightPack.Kinds];
            var old = packs[(int)pack.Kind];
            if (old != null && old.SameLayout(pack)) { pack.Dispose(); return old; }
            old?.Dispose();
            packs[(int)pack.Kind] = pack;
            Volatile.Write(ref _packs, packs);
            return pack;
        }
    }

    /// <summary>Frees every packed copy of this tensor (the next eligible call packs again from the current values).</summary>
    internal void DropPacks()
    {
        // Every disposed tensor comes here: those without packs (all activations) must not take the lock.
        if (Volatile.Read(ref _packs) == null) return;
        lock (PackLock)
        {
            var packs = _packs;
            if (packs == null) return;
            _packs = null;
            foreach (var p in packs) p?.Dispose();
        }
    }

    private byte* DropPacksThen(byte* p)
    {
        DropPacks();
        return p;
    }

    /// <summary>Bytes held by this tensor's packed copies.</summary>
    internal long PackedBytes
    {
        get
        {
            var packs = Volatile.Read(ref _packs);
            long sum = 0;
            if (packs != null) foreach (var p in packs) sum += p?.Bytes ?? 0;
            return sum;
        }
    }
}
