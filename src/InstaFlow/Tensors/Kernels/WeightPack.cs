// A weight packed once into the exact layout a kernel consumes (Linear B panels, conv A panels, Winograd U matrices),
// kept beside the weight for inference with frozen weights, and the rule deciding when a call may use one.
using System.Runtime.InteropServices;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tensors.Kernels;

internal enum WeightPackKind { LinearB, ConvA, WinogradU, WinogradU6 }

/// <summary>
/// F32 panels made by the kernels' own packing routines (so a call with the pack computes exactly what a call that
/// packs computes): 4 bytes per weight element (twice an F16 weight's size), plus panel padding; Winograd U matrices
/// 16 or 28 bytes per 3x3-kernel element (36 or 64 transformed values per 9 taps, F(4x4) or F(6x6)).
/// </summary>
internal sealed unsafe class WeightPack : IDisposable
{
    public const int Kinds = 4;

    public WeightPackKind Kind { get; }
    /// <summary>The layout's two sizes: N x K for Linear, OutC x InC*KH*KW for conv, OutC x InC for Winograd.</summary>
    public int Rows { get; }
    public int Cols { get; }
    public long Bytes { get; }
    private nint _p;

    private WeightPack(WeightPackKind kind, int rows, int cols, long floats)
    {
        Kind = kind; Rows = rows; Cols = cols; Bytes = floats * sizeof(float);
        // Not from the pool or the pack arena: a pack lives as long as its weight.
        _p = (nint)NativeMemory.AlignedAlloc((nuint)Bytes, NativeBuffer.Alignment);
        if (_p == 0) throw new OutOfMemoryException($"could not allocate {Bytes} bytes for a packed weight");
    }

    public float* Pointer => _p != 0 ? (float*)_p : throw new ObjectDisposedException(nameof(WeightPack));

    public bool SameLayout(WeightPack other) => Kind == other.Kind && Rows == other.Rows && Cols == other.Cols;

    /// <summary>Linear weight [n, k] (row-major, stored precision) as the B^T panels of <see cref="Gemm.SgemmStoredBT"/>.</summary>
    public static WeightPack Linear(StoredData w, int n, int k)
    {
        var p = new WeightPack(WeightPackKind.LinearB, n, k, GemmPacking.PackedSize(n, k, GemmKernels.NR));
        Gemm.PackStoredBT(w, k, n, k, p.Pointer);
        return p;
    }

    /// <summary>Conv weight [outC, kdim] as the A panels of <see cref="Conv2d.Forward(in Conv2dShape, float*, StoredData, float*, float*, float*)"/>.</summary>
    public static WeightPack Conv(StoredData w, int outC, int kdim)
    {
        var p = new WeightPack(WeightPackKind.ConvA, outC, kdim, GemmPacking.PackedSize(outC, kdim, GemmKernels.MR));
        GemmPacking.PackA(w, kdim, outC, kdim, p.Pointer);
        return p;
    }

    /// <summary>The pack layout of one Winograd algorithm's transformed weights.</summary>
    public static WeightPackKind WinogradKind(WinogradTile tile) => tile == WinogradTile.F6 ? WeightPackKind.WinogradU6 : WeightPackKind.WinogradU;

    /// <summary>3x3 conv weight [outC, inC, 3, 3] as the transformed matrices of <see cref="Conv2dWinograd"/> for one tile.</summary>
    public static WeightPack Winograd(StoredData w, int outC, int inC, WinogradTile tile)
    {
        var p = new WeightPack(WinogradKind(tile), outC, inC, Conv2dWinograd.TransformedFloats(outC, inC, tile));
        Conv2dWinograd.TransformWeights(w, outC, inC, p.Pointer, tile);
        return p;
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~WeightPack() => Free();

    private void Free()
    {
        var p = Interlocked.Exchange(ref _p, 0);
        if (p == 0) return;
        NativeMemory.AlignedFree((void*)p);
    }
}

/// <summary>When a Linear/Conv2d call uses (and if needed makes) its weight's pack.</summary>
internal static class WeightPacks
{
    /// <summary>While set on a thread, its calls pack as if no weight kept a pack (benchmarks alternate the two paths).</summary>
    [ThreadStatic] internal static bool Bypass;

    /// <summary>
    /// The weight's pack for this call, or null to pack as usual: only for weights marked by
    /// <see cref="Nn.WeightPacking.Enable"/>, calls of at most their row limit (small M, where packing costs as much
    /// as the products), and never while gradients may flow (a training forward: its weights change every step).
    /// </summary>
    public static WeightPack? For(Tensor weight, long rows, ReadOnlySpan<Tensor?> inputs, WeightPackKind kind, int a, int b)
    {
        int max = weight.PackMaxRows;
        if (max == 0 || rows > max || Bypass) return null;
        if (GradMode.IsEnabled && (weight.RequiresGrad || GradMode.ShouldRecord(inputs))) return null;
        var have = weight.FindPack(kind);
        if (have != null && have.Rows == a && have.Cols == b) return have;
        var w = weight.Stored;
        return weight.InstallPack(kind switch
        {
            WeightPackKind.LinearB => WeightPack.Linear(w, a, b),
            WeightPackKind.ConvA => WeightPack.Conv(w, a, b),
            WeightPackKind.WinogradU => WeightPack.Winograd(w, a, b, WinogradTile.F4),
            _ => WeightPack.Winograd(w, a, b, WinogradTile.F6),
        });
    }
}
