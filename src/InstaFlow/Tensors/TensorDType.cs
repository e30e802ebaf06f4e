// Element types of tensors. Everything computed is F32; F16/BF16 exist so that weights stay in the precision their
// file stores (half the memory) and are widened only inside the kernels that pack them.
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public enum TensorDType { F32, F16, BF16 }

/// <summary>A pointer to stored elements with their type: what the packing kernels read weights through.</summary>
internal readonly unsafe struct StoredData(byte* pointer, TensorDType dtype)
{
    public readonly byte* Pointer = pointer;
    public readonly TensorDType DType = dtype;

    /// <summary>Float32 data (the common case): the kernels' plain path.</summary>
    public float* Float32 => DType == TensorDType.F32 ? (float*)Pointer : throw new InvalidOperationException($"StoredData is {DType}, not F32");

    /// <summary>dst[0..n) = elements [start, start + n) as float32; the widening is exact.</summary>
    public void Widen(long start, float* dst, long n)
    {
        switch (DType)
        {
            case TensorDType.F32: Buffer.MemoryCopy((float*)Pointer + start, dst, n * 4, n * 4); break;
            case TensorDType.F16: HalfConvert.F16ToF32((ushort*)Pointer + start, dst, n); break;
            default: HalfConvert.BF16ToF32((ushort*)Pointer + start, dst, n); break;
        }
    }

    public float this[long i] => DType switch
    {
        TensorDType.F32 => ((float*)Pointer)[i],
        TensorDType.F16 => HalfConvert.F16ToF32Scalar(((ushort*)Pointer)[i]),
        _ => HalfConvert.BF16ToF32Scalar(((ushort*)Pointer)[i]),
    };
}
