// Shape ops: reshape (a view), permute/transpose and narrow (materialized unless they are free), concat, pad.
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var s = (int[])shape.Clone();
        int infer = -1; long known = 1;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"Reshape: more than one -1 in {ShapeUtil.Format(shape)}");
                infer = i;
            }
            else if (s[i] < 0) throw new ArgumentException($"Reshape: negative dimension in {ShapeUtil.Format(shape)}");
            else known *= s[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || x.Numel % known != 0) throw new ArgumentException($"Reshape: cannot reshape {x.Describe()} to {ShapeUtil.Format(shape)}");
            s[infer] = (int)(x.Numel / known);
        }
        if (ShapeUtil.Numel(s) != x.Numel) throw new ArgumentException($"Reshape: cannot reshape {x.Describe()} ({x.Numel} elements) to {ShapeUtil.Format(shape)}");
        var y = x.View(s, 0);
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Reshape, new[] { x });
        return y;
    }

    /// <summary>Reorders dims (materializes): y.shape[i] = x.shape[perm[i]].</summary>
    public static Tensor Permute(Tensor x, params int[] perm)
    {
        int r = x.Rank;
        if (perm.Length != r) throw new ArgumentException($"Permute: permutation {ShapeUtil.Format(perm)} has {perm.Length} dims for {x.Describe()}");
        var seen = new bool[r];
        var p = new int[r];
        for (int i = 0; i < r; i++)
        {
            p[i] = ShapeUtil.NormDim(perm[i], r, "Permute");
            if (seen[p[i]]) throw new ArgumentException($"Permute: {ShapeUtil.Format(perm)} repeats dim {p[i]}");
            seen[p[i]] = true;
        }
        var outShape = new int[r];
        for (int i = 0; i < r; i++) outShape[i] = x.Shape[p[i]];
        var y = Tensor.Empty(outShape);
        Kernels.Transpose.Permute(x.Data, x.Shape, p, y.Data);
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Permute, new[] { x }, ints: p);
        return y;
    }

    public static Tensor Transpose(Tensor x, int d0, int d1)
    {
        int r = x.Rank;
        d0 = ShapeUtil.NormDim(d0, r, "Transpose"); d1 = ShapeUtil.NormDim(d1, r, "Transpose");
        var p = Enumerable.Range(0, r).ToArray();
        (p[d0], p[d1]) = (p[d1], p[d0]);
        return Permute(x, p);
    }

    /// <summary>Slice [start, start+length) along dim. A view when every dim before it is 1; a copy otherwise.</summary>
    public static Tensor Narrow(Tensor x, int dim, int start, int length)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "Narrow");
        int size = x.Shape[d];
        if (start < 0 || length < 0 || start + length > size)
            throw new ArgumentException($"Narrow: range [{start}, {start + length}) is outside dim {d} of {x.Describe()}");
        var outShape = x.ShapeArray(); outShape[d] = length;
        long outer = 1; for (int i = 0; i < d; i++) outer *= x.Shape[i];
        long inner = 1; for (int i = d + 1; i < x.Rank; i++) inner *= x.Shape[i];
        Tensor y;
        if (outer == 1) y = x.View(outShape, start * inner);
        else
        {
            y = Tensor.Empty(outShape);
            float* src = x.Data, dst = y.Data;
            long run = length * inner;
            for (long o = 0; o < outer; o++)
                Buffer.MemoryCopy(src + (o * size + start) * inner, dst + o * run, run * 4, run * 4);
        }
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Narrow, new[] { x }, ints: new[] { d, start, size });
        return y;
    }

    /// <summary>Splits dim into `chunks` equal parts (dim size must divide evenly).</summary>
    public static Tensor[] Chunk(Tensor x, int chunks, int dim)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "Chunk");
        if (chunks <= 0 || x.Shape[d] % chunks != 0) throw new ArgumentException($"Chunk: dim {d} of {x.Describe()} does not split into {chunks} equal parts");
        int len = x.Shape[d] / chunks;
        var r = new Tensor[chunks];
        for (int i = 0; i < chunks; i++) r[i] = Narrow(x, d, i * len, len);
        return r;
    }

    public static Tensor Concat(Tensor[] xs, int dim)
    {
        if (xs.Length == 0) throw new ArgumentException("Concat: no tensors");
        int r = xs[0].Rank;
        int d = ShapeUtil.NormDim(dim, r, "Concat");
        var outShape = xs[0].ShapeArray();
        int total = 0;
        foreach (var x in xs)
        {
            if (x.Rank != r) throw new ArgumentException($"Concat: ranks differ: {xs[0].Describe()} and {x.Describe()}");
            for (int i = 0; i < r; i++)
                if (i != d && x.Shape[i] != outShape[i]) throw new ArgumentException($"Concat along dim {d}: shapes {xs[0].Describe()} and {x.Describe()} differ in dim {i}");
            total += x.Shape[d];
        }
        outShape[d] = total;
        var y = Tensor.Empty(outShape);
        long outer = 1; for (int i = 0; i < d; i++) outer *= outShape[i];
        long inner = 1; for (int i = d + 1; i < r; i++) inner *= outShape[i];
        long outRun = total * inner, off = 0;
        var sizes = new int[xs.Length];
        for (int k = 0; k < xs.Length; k++)
        {
            var x = xs[k];
            long run = x.Shape[d] * inner;
            float* src = x.Data, dst = y.Data + off;
            for (long o = 0; o < outer; o++) Buffer.MemoryCopy(src + o * run, dst + o * outRun, run * 4, run * 4);
            off += run;
            sizes[k] = x.Shape[d];
        }
        if (GradMode.ShouldRecord(xs)) Tape.Record(y, OpKind.Concat, xs, ints: new[] { d }.Concat(sizes).ToArray());
        return y;
    }

    /// <summary>Zero-pads the last two dims of [.., H, W]: (left, right, top, bottom), as F.pad(x, (l, r, t, b)).</summary>
    public static Tensor Pad2d(Tensor x, int left, int right, int top, int bottom)
    {
        if (x.Rank < 2) throw new ArgumentException($"Pad2d: needs rank >= 2, got {x.Describe()}");
        if (left < 0 || right < 0 || top < 0 || bottom < 0) throw new ArgumentException($"Pad2d: negative padding ({left}, {right}, {top}, {bottom})");
        int h = x.Dim(-2), w = x.Dim(-1);
        int ho = h + top + bottom, wo = w + left + right;
        var outShape = x.ShapeArray(); outShape[^2] = ho; outShape[^1] = wo;
        var y = Tensor.Zeros(outShape);
        long planes = x.Numel / ((long)h * w);
        float* src = x.Data, dst = y.Data;
        for (long p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
                Buffer.MemoryCopy(src + (p * h + i) * w, dst + (p * ho + i + top) * wo + left, w * 4, w * 4);
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Pad, new[] { x }, ints: new[] { left, right, top, bottom });
        return y;
    }
}
