// Matrix products: matmul (2D, batched 3D+, or [.., M, K] x [K, N]) and linear layers, all through SGEMM.
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    /// <summary>
    /// a: [.., M, K], b: [K, N] or [.., K, N] with the same leading dims. transB treats b's last two dims as [N, K].
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transB = false)
    {
        if (a.Rank < 2 || b.Rank < 2) throw new ArgumentException($"MatMul: both operands need rank >= 2, got {a.Describe()} and {b.Describe()}");
        int m = a.Dim(-2), k = a.Dim(-1);
        int kb = transB ? b.Dim(-1) : b.Dim(-2), n = transB ? b.Dim(-2) : b.Dim(-1);
        if (k != kb) throw new ArgumentException($"MatMul: inner dims differ: {a.Describe()} x {b.Describe()}{(transB ? "^T" : "")}");
        long batchA = a.Numel / ((long)m * k);
        bool shared = b.Rank == 2;
        if (!shared)
        {
            if (b.Rank != a.Rank) throw new ArgumentException($"MatMul: batch ranks differ: {a.Describe()} x {b.Describe()}");
            for (int i = 0; i < a.Rank - 2; i++)
                if (a.Shape[i] != b.Shape[i]) throw new ArgumentException($"MatMul: batch dims differ: {a.Describe()} x {b.Describe()}");
        }
        var outShape = a.ShapeArray(); outShape[^1] = n;
        var c = Tensor.Empty(outShape);
        FlopCounter.Add(2L * batchA * m * n * k);
        if (shared)
            Gemm.Sgemm(false, transB, (int)(batchA * m), n, k, 1f, a.Data, k, b.Data, transB ? k : n, 0f, c.Data, n);
        else
            for (long bi = 0; bi < batchA; bi++)
                Gemm.Sgemm(false, transB, m, n, k, 1f, a.Data + bi * m * k, k, b.Data + bi * k * n, transB ? k : n, 0f, c.Data + bi * m * n, n);
        if (GradMode.ShouldRecord(a, b)) Tape.Record(c, OpKind.MatMul, new[] { a, b }, new[] { a, b }, ints: new[] { transB ? 1 : 0 });
        return c;
    }

    /// <summary>y = x W^T + b. x: [.., in], weight: [out, in] (PyTorch layout), bias: [out] or null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        ShapeUtil.RequireRank(weight, 2, "Linear", "weight");
        int outF = weight.Dim(0), inF = weight.Dim(1);
        if (x.Rank < 1 || x.Dim(-1) != inF) throw new ArgumentException($"Linear: input {x.Describe()} does not end in {inF} features for weight {weight.Describe()}");
        if (bias != null && (bias.Rank != 1 || bias.Dim(0) != outF)) throw new ArgumentException($"Linear: bias {bias.Describe()} does not match weight {weight.Describe()}");
        long rows = x.Numel / Math.Max(1, inF);
        InferenceMark("other ops (elementwise, copies, embeddings)");
        var outShape = x.ShapeArray(); outShape[^1] = outF;
        var y = Tensor.Empty(outShape);
        float* py = y.Data;
        var inputs = bias == null ? new[] { x, weight } : new[] { x, weight, bias };
        RequireTrainable(weight, inputs, "Linear");
        // SgemmStoredBT packs the weight only from 16 rows and columns on; below that there is nothing to keep.
        var pack = rows >= 16 && outF >= 16 ? WeightPacks.For(weight, rows, inputs, WeightPackKind.LinearB, outF, inF) : null;
        // the bias goes into each tile of y as the GEMM first writes it (the bits of y filled with it first, with beta 1)
        Gemm.SgemmStoredBT((int)rows, outF, inF, x.Data, inF, weight.Stored, inF, 0f, py, outF, pack != null ? pack.Pointer : null,
            bias != null ? bias.Data : null);
        WeightLastUse.DropPages(weight);
        // counted after the GEMM, which marks its weight packing: a profile books the FLOPs to the GEMM
        FlopCounter.Add(2L * rows * outF * inF);
        InferenceMark("Linear: GEMM (with packing the activations)");
        if (GradMode.ShouldRecord(inputs)) Tape.Record(y, OpKind.Linear, inputs, new[] { x, weight });
        return y;
    }

    /// <summary>
    /// Splits an inference pass's time by kernel for an <see cref="OpProfile"/> collecting on this thread (a training
    /// forward is split by the tape's own marks instead).
    /// </summary>
    internal static void InferenceMark(string op)
    {
        if (OpProfile.Current != null && !GradMode.IsEnabled) OpProfile.MarkCurrent("inference", op);
    }

    /// <summary>Reduced-precision weights have no backward rule: recording one would fail later, far from the cause.</summary>
    private static void RequireTrainable(Tensor weight, Tensor[] inputs, string op)
    {
        if (weight.DType != TensorDType.F32 && GradMode.ShouldRecord(inputs))
            throw new InvalidOperationException($"{op}: weight {weight.Describe()} is kept in its stored precision, which is for inference only; " +
                "load the model with WeightPrecision.Float32 to train it or to differentiate through it");
    }
}
