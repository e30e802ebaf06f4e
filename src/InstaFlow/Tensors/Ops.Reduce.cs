// Reductions over one dim (sum, mean, variance), whole-tensor sum/mean, and softmax over the last dim.
using System.Runtime.Intrinsics;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    /// <summary>Sum over dim; keepDim leaves a size-1 dim in place.</summary>
    public static Tensor Sum(Tensor x, int dim, bool keepDim = false) => ReduceDim(x, dim, keepDim, mean: false);
    public static Tensor Mean(Tensor x, int dim, bool keepDim = false) => ReduceDim(x, dim, keepDim, mean: true);

    /// <summary>Sum of all elements, as a [1] tensor.</summary>
    public static Tensor SumAll(Tensor x) => Sum(Reshape(x, -1), 0, keepDim: true);
    public static Tensor MeanAll(Tensor x) => Mean(Reshape(x, -1), 0, keepDim: true);

    private static Tensor ReduceDim(Tensor x, int dim, bool keepDim, bool mean)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, mean ? "Mean" : "Sum");
        var (outer, size, inner) = Split(x.Shape, d);
        var y = Tensor.Empty(ReducedShape(x.Shape, d, keepDim));
        Reduce.SumDim(x.Data, outer, size, inner, y.Data, mean ? 1f / size : 1f);
        if (GradMode.ShouldRecord(x))
            Tape.Record(y, mean ? OpKind.Mean : OpKind.Sum, new[] { x }, ints: new[] { d, keepDim ? 1 : 0 });
        return y;
    }

    /// <summary>Variance over dim with Bessel's correction by default (torch.var semantics).</summary>
    public static Tensor Var(Tensor x, int dim, bool keepDim = false, int correction = 1)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "Var");
        var (outer, size, inner) = Split(x.Shape, d);
        if (size - correction <= 0) throw new ArgumentException($"Var: dim {d} of {x.Describe()} has {size} elements, too few for correction {correction}");
        var y = Tensor.Empty(ReducedShape(x.Shape, d, keepDim));
        Reduce.VarDim(x.Data, outer, size, inner, y.Data, correction);
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Var, new[] { x }, new[] { x }, ints: new[] { d, keepDim ? 1 : 0, correction });
        return y;
    }

    public static Tensor Softmax(Tensor x)
    {
        if (x.Rank < 1) throw new ArgumentException($"Softmax: needs rank >= 1, got {x.Describe()}");
        int n = x.Dim(-1);
        var y = Tensor.Empty(x.ShapeArray());
        long rows = n == 0 ? 0 : x.Numel / n;
        float* px = x.Data, py = y.Data;
        Par.ForRange(rows, Math.Max(1, 8192 / Math.Max(1, n)), (s, e) =>
        {
            for (long r = s; r < e; r++) Reduce.SoftmaxRow(px + r * n, py + r * n, n);
        });
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Softmax, new[] { x }, new[] { y.Detach() });
        return y;
    }

    internal static (long outer, int size, long inner) Split(ReadOnlySpan<int> shape, int d)
    {
        long outer = 1; for (int i = 0; i < d; i++) outer *= shape[i];
        long inner = 1; for (int i = d + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, shape[d], inner);
    }

    internal static int[] ReducedShape(ReadOnlySpan<int> shape, int d, bool keepDim)
    {
        var l = shape.ToArray().ToList();
        if (keepDim) l[d] = 1; else l.RemoveAt(d);
        return l.ToArray();
    }
}
