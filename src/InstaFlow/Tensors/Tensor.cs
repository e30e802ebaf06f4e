// The tensor: contiguous row-major storage (NCHW for images) with a shape. Views share storage (reshape, narrowing
// along the outermost non-unit dim); anything else materializes a new tensor. Compute is float32; F16/BF16 tensors
// are weights kept in their stored precision, read only by the ops that widen them while packing (Linear, Conv2d).
using System.Runtime.CompilerServices;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tensors;

public sealed unsafe partial class Tensor : IDisposable
{
    private readonly int[] _shape;
    private NativeBuffer? _buffer;
    private readonly long _offset; // in elements of DType

    /// <summary>Element type: F32 for everything computed; F16/BF16 only for weights loaded in stored precision.</summary>
    public TensorDType DType { get; }

    public long Numel { get; }
    public ReadOnlySpan<int> Shape => _shape;
    public int Rank => _shape.Length;

    /// <summary>Gradient accumulated by <see cref="Backward"/>; allocated on first use, outside any scope.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>When set, operations on this tensor are recorded for reverse-mode differentiation.</summary>
    public bool RequiresGrad { get; set; }

    internal TapeNode? Node { get; set; }

    /// <summary>Name used in error messages and state dicts (e.g. "down_blocks.0.resnets.1.conv1.weight").</summary>
    public string? Name { get; set; }

    internal Tensor(int[] shape, NativeBuffer buffer, long offset, bool register, TensorDType dtype = TensorDType.F32)
    {
        DType = dtype;
        _shape = shape;
        _buffer = buffer;
        _offset = offset;
        Numel = ShapeUtil.Numel(shape);
        if (register) TensorScope.Register(this);
    }

    public float* Data
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if (DType != TensorDType.F32) throw NotFloat32();
            // A writable pointer may change the values, so a weight's packed copy is dropped (see WeightPacks).
            if (_packs != null) DropPacks();
            return (float*)Storage.Pointer + _offset;
        }
    }

    /// <summary>The stored bits of an F16 or BF16 tensor.</summary>
    public ushort* HalfData => DType != TensorDType.F32 ? (ushort*)DropPacksThen(Storage.Pointer) + _offset
        : throw new InvalidOperationException($"tensor {Describe()} is F32; HalfData reads F16/BF16 tensors");

    /// <summary>The storage in its own precision, for the kernels that widen weights while packing them.</summary>
    internal StoredData Stored => new(Storage.Pointer + _offset * ElementSize, DType);

    /// <summary>True for a zero-copy view of a memory-mapped weights file.</summary>
    public bool IsFileMapped => Storage.IsFileMapping;

    public int ElementSize => DType == TensorDType.F32 ? sizeof(float) : sizeof(ushort);

    private NativeBuffer Storage => _buffer ?? throw new ObjectDisposedException(nameof(Tensor), $"tensor {Describe()} was disposed (it was created in a TensorScope that has ended; call scope.Keep or create it outside the scope)");

    private InvalidOperationException NotFloat32() => new($"tensor {Describe()} is stored as {DType} and this operation reads float32: " +
        "only Linear and Conv2d read reduced-precision weights; widen it first with ToFloat32(), or load the model with WeightPrecision.Float32 to train or edit its weights");

    public Span<float> Span => new(Data, checked((int)Numel));
    public bool IsDisposed => _buffer == null;

    public int Dim(int d) => _shape[ShapeUtil.NormDim(d, Rank, "Dim")];
    public int[] ShapeArray() => (int[])_shape.Clone();
    public string Describe() => (Name != null ? Name + " " : "") + ShapeUtil.Format(_shape) + (DType != TensorDType.F32 ? " " + DType : "");
    public override string ToString() => $"Tensor{ShapeUtil.Format(_shape)}";

    // ---- creation ----

    /// <summary>Uninitialized tensor from the pool, owned by the current <see cref="TensorScope"/> if any.</summary>
    public static Tensor Empty(params int[] shape)
    {
        ShapeUtil.Validate(shape, "Empty");
        long n = ShapeUtil.Numel(shape);
        return new Tensor((int[])shape.Clone(), NativeBuffer.Rent(n * sizeof(float)), 0, register: true);
    }

    /// <summary>Like <see cref="Empty"/> but never owned by a scope: for parameters, gradients, optimizer state.</summary>
    public static Tensor EmptyPersistent(params int[] shape)
    {
        ShapeUtil.Validate(shape, "EmptyPersistent");
        long n = ShapeUtil.Numel(shape);
        return new Tensor((int[])shape.Clone(), NativeBuffer.Rent(n * sizeof(float)), 0, register: false);
    }

    public static Tensor Zeros(params int[] shape) { var t = Empty(shape); t.Span.Clear(); return t; }
    public static Tensor Full(float value, params int[] shape) { var t = Empty(shape); t.Span.Fill(value); return t; }
    public static Tensor ZerosLike(Tensor x) => Zeros(x._shape);
    public static Tensor EmptyLike(Tensor x) => Empty(x._shape);

    public static Tensor FromArray(float[] data, params int[] shape)
    {
        ShapeUtil.Validate(shape, "FromArray");
        if (ShapeUtil.Numel(shape) != data.Length)
            throw new ArgumentException($"FromArray: {data.Length} values do not fill shape {ShapeUtil.Format(shape)} ({ShapeUtil.Numel(shape)} elements)");
        var t = Empty(shape);
        data.AsSpan().CopyTo(t.Span);
        return t;
    }

    public static Tensor Scalar(float v) => FromArray(new[] { v }, 1);

    /// <summary>A tensor over memory owned elsewhere (e.g. a memory-mapped weight file): no copy is made.</summary>
    public static Tensor FromBuffer(NativeBuffer buffer, long offsetElements, int[] shape, TensorDType dtype = TensorDType.F32)
    {
        ShapeUtil.Validate(shape, "FromBuffer");
        if ((offsetElements + ShapeUtil.Numel(shape)) * (dtype == TensorDType.F32 ? 4 : 2) > buffer.Bytes)
            throw new ArgumentException($"FromBuffer: {ShapeUtil.Format(shape)} {dtype} at element {offsetElements} runs past the buffer's {buffer.Bytes} bytes");
        return new Tensor((int[])shape.Clone(), buffer, offsetElements, register: false, dtype);
    }

    /// <summary>An uninitialized F16/BF16 tensor no scope owns (weights converted to a reduced precision).</summary>
    public static Tensor EmptyHalfPersistent(TensorDType dtype, params int[] shape)
    {
        if (dtype == TensorDType.F32) throw new ArgumentException("EmptyHalfPersistent: F16 or BF16, not F32 (use EmptyPersistent)");
        ShapeUtil.Validate(shape, "EmptyHalfPersistent");
        return new Tensor((int[])shape.Clone(), NativeBuffer.Rent(ShapeUtil.Numel(shape) * sizeof(ushort)), 0, register: false, dtype);
    }

    /// <summary>The values as float32 (F16/BF16 are widened, exactly).</summary>
    public float[] ToArray()
    {
        if (DType == TensorDType.F32) return Span.ToArray();
        var a = new float[Numel];
        fixed (float* p = a) Stored.Widen(0, p, Numel);
        return a;
    }

    /// <summary>A float32 copy no scope owns (F16/BF16 widened exactly); the name is kept.</summary>
    public Tensor ToFloat32()
    {
        var t = EmptyPersistent(_shape);
        Stored.Widen(0, t.Data, Numel);
        t.Name = Name;
        return t;
    }

    public float Item()
    {
        if (Numel != 1) throw new InvalidOperationException($"Item() needs a single-element tensor, got {Describe()}");
        return Data[0];
    }

    [System.Runtime.CompilerServices.IndexerName("At")]
    public float this[params int[] index]
    {
        get => Data[ShapeUtil.FlatIndex(_shape, index)];
        set => Data[ShapeUtil.FlatIndex(_shape, index)] = value;
    }

    public Tensor Clone()
    {
        var t = Empty(_shape);
        Span.CopyTo(t.Span);
        return t;
    }

    /// <summary>A copy that no scope owns (dispose it yourself), in the same dtype: for results that outlive the current step.</summary>
    public Tensor ClonePersistent()
    {
        if (DType != TensorDType.F32)
        {
            var h = EmptyHalfPersistent(DType, _shape);
            Buffer.MemoryCopy(HalfData, h.HalfData, Numel * 2, Numel * 2);
            return h;
        }
        var t = EmptyPersistent(_shape);
        Span.CopyTo(t.Span);
        return t;
    }

    /// <summary>Same data, detached from the tape (a view: shares storage).</summary>
    public Tensor Detach() => View(_shape, 0);

    /// <summary>Copies values from src (same number of elements) into this tensor, in place, outside autograd.</summary>
    public void CopyFrom(Tensor src)
    {
        if (src.Numel != Numel) throw new ArgumentException($"CopyFrom: {src.Describe()} into {Describe()}: element counts differ");
        src.Span.CopyTo(Span);
    }

    internal Tensor View(int[] shape, long extraOffset)
    {
        var b = _buffer ?? throw new ObjectDisposedException(nameof(Tensor), $"tensor {Describe()} was disposed");
        b.AddRef();
        return new Tensor(shape, b, _offset + extraOffset, register: true, DType);
    }

    /// <summary>A view with a new shape (one dim may be -1). Shares storage; recorded on the tape.</summary>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        b?.Release();
        DropPacks();
        Node = null;
    }
}

public sealed partial class Tensor
{
    /// <summary>True when this tensor is a leaf that needs a gradient or the output of a recorded op.</summary>
    public bool TracksGrad => RequiresGrad || Node != null;

    public void Backward(Tensor? gradOutput = null) => Tape.Backward(this, gradOutput);
}
