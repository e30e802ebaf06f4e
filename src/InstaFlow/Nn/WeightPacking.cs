// Opting a network's Linear and Conv2d weights into being packed once (for inference with frozen weights) instead of
// on every call, and dropping those packs. Off unless asked for: the packs cost memory (see Enable).
using InstaFlow.Tensors;

namespace InstaFlow.Nn;

public static class WeightPacking
{
    /// <summary>
    /// Calls with at most this many rows (tokens, or output pixels over the batch) keep a pack by default: there the
    /// weight is large next to the products (SD-1.5's text encoder at 77 tokens; the UNet's 32x32, 16x16 and 8x8
    /// levels and its cross-attention keys and values), while a 64x64 level (4096 rows) spends under 2% of a layer's
    /// time packing its weight and the VAE decoder none worth keeping.
    /// </summary>
    public const int DefaultMaxRows = 1024;

    /// <summary>
    /// Marks every Linear and Conv2d weight of network: from now on a forward call with at most maxRows rows, run
    /// without gradients, packs the weight on first use and reuses that pack (results are bit-identical). Memory: each
    /// kept pack holds the weight as float32 panels (4 bytes per weight, 2x an F16 weight) and a Winograd layer's
    /// transformed weights as 16 bytes per weight; see <see cref="PackedBytes"/>. Writing a weight through Data/Span/
    /// HalfData/CopyFrom, replacing it (<see cref="Parameter.Replace"/>) or disposing it drops its packs. Returns the
    /// number of weights marked.
    /// </summary>
    public static int Enable(Module network, int maxRows = DefaultMaxRows)
    {
        if (maxRows < 1) throw new ArgumentOutOfRangeException(nameof(maxRows), $"the row limit must be at least 1, got {maxRows}");
        int n = 0;
        foreach (var w in Weights(network)) { w.Value.PackMaxRows = maxRows; n++; }
        return n;
    }

    /// <summary>Unmarks every weight of network and frees its packs: every call packs again, as by default.</summary>
    public static void Disable(Module network)
    {
        foreach (var w in Weights(network))
        {
            w.Value.PackMaxRows = 0;
            w.Value.DropPacks();
        }
    }

    /// <summary>
    /// Frees the packs of every parameter of network (marks stay, so the next calls pack the current values again):
    /// for code that changes weights by other means than the tensor's own writable accessors (e.g. through a view).
    /// </summary>
    public static void Drop(Module network)
    {
        foreach (var p in network.Parameters()) if (!p.Value.IsDisposed) p.Value.DropPacks();
    }

    /// <summary>Bytes held by the packs of network's parameters now.</summary>
    public static long PackedBytes(Module network) => network.Parameters().Where(p => !p.Value.IsDisposed).Sum(p => p.Value.PackedBytes);

    private static IEnumerable<Parameter> Weights(Module network) =>
        network.NamedModules().Select(m => m.Module switch { Linear l => l.Weight, Conv2d c => c.Weight, _ => null })
            .Where(p => p != null && !p.Value.IsDisposed).Select(p => p!);
}
