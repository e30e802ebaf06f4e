// Layer ops: conv2d, group/layer norm, nearest upsampling, embedding lookup, fused attention (with tape recording).
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    /// <summary>
    /// x: [B, Cin, H, W], weight: [Cout, Cin, KH, KW], bias: [Cout] or null. padding is (top, bottom, left, right).
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride = 1, int padding = 0) =>
        Conv2d(x, weight, bias, stride, padding, padding, padding, padding);

    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride, int padTop, int padBottom, int padLeft, int padRight)
    {
        ShapeUtil.RequireRank(x, 4, "Conv2d");
        ShapeUtil.RequireRank(weight, 4, "Conv2d", "weight");
        if (weight.Dim(1) != x.Dim(1)) throw new ArgumentException($"Conv2d: input {x.Describe()} has {x.Dim(1)} channels but weight {weight.Describe()} expects {weight.Dim(1)}");
        if (bias != null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0))) throw new ArgumentException($"Conv2d: bias {bias.Describe()} does not match weight {weight.Describe()}");
        if (stride < 1 || padTop < 0 || padBottom < 0 || padLeft < 0 || padRight < 0) throw new ArgumentException($"Conv2d: invalid stride {stride} or padding ({padTop}, {padBottom}, {padLeft}, {padRight})");
        var s = new Conv2dShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), weight.Dim(0), weight.Dim(2), weight.Dim(3), stride, padTop, padBottom, padLeft, padRight);
        if (s.H + padTop + padBottom < s.KH || s.W + padLeft + padRight < s.KW)
            throw new ArgumentException($"Conv2d: input {x.Describe()} (padded) is smaller than the kernel {weight.Describe()}");
        InferenceMark("other ops (elementwise, copies, embeddings)");
        var y = Tensor.Empty(s.Batch, s.OutC, s.OutH, s.OutW);
        // Inference and training forward alike; the backward rule takes Winograd for the input gradient by the same
        // rule (applied to the gradient's own conv) and keeps the direct kernel for the weight gradient.
        var inputs = bias == null ? new[] { x, weight } : new[] { x, weight, bias };
        RequireTrainable(weight, inputs, "Conv2d");
        long rows = (long)s.Batch * s.OutH * s.OutW;
        if (Conv2dWinograd.ShouldUse(s)) WinogradConv(s, x, weight, bias, y, inputs, null);
        else
        {
            // the few-output kernel reads the weight as stored, so no pack is kept for it
            var a = Kernels.Conv2dFewOut.Qualifies(s) ? null : WeightPacks.For(weight, rows, inputs, WeightPackKind.ConvA, s.OutC, s.InC * s.KH * s.KW);
            Kernels.Conv2d.Forward(s, x.Data, weight.Stored, bias != null ? bias.Data : null, y.Data, a != null ? a.Pointer : null);
            // counted after the kernel, which marks its weight packing: a profile books the FLOPs to the GEMM
            FlopCounter.Add(s.Flops);
            InferenceMark(s.IsPointwise ? "conv 1x1: GEMM" : "conv direct: implicit GEMM");
        }
        WeightLastUse.DropPages(weight);
        if (GradMode.ShouldRecord(inputs))
            Tape.Record(y, OpKind.Conv2d, inputs, new[] { x, weight }, ints: new[] { stride, padTop, padBottom, padLeft, padRight });
        return y;
    }

    private static void WinogradConv(in Conv2dShape s, Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor[] inputs, NormSiluAffine* normSilu,
        bool upsampled = false)
    {
        var tile = Conv2dWinograd.TileFor(s);
        var u = WeightPacks.For(weight, (long)s.Batch * s.OutH * s.OutW, inputs, WeightPack.WinogradKind(tile), s.OutC, s.InC);
        Conv2dWinograd.Forward(s, x.Data, weight.Stored, bias != null ? bias.Data : null, y.Data, tile, u != null ? u.Pointer : null, normSilu, upsampled);
        // the direct conv's FLOPs, counted after the kernel, which marks its weight transform
        FlopCounter.Add(s.Flops);
        InferenceMark("conv Winograd: GEMMs and data transforms");
    }

    /// <summary>
    /// Conv2d(SiLU(GroupNorm(x)), weight, bias, stride 1, padding) at inference, as every ResNet half-block runs it.
    /// Where the conv takes the Winograd path the activation is never stored: the statistics take one pass over x and
    /// the input transform normalizes and activates each tap it reads (the same arithmetic as GroupNormSilu, so the
    /// same activations wherever both take the vector path). Elsewhere it is GroupNormSilu, then Conv2d.
    /// </summary>
    public static Tensor GroupNormSiluConv2d(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Tensor weight, Tensor? bias, int padding)
    {
        var inputs = bias == null ? new[] { x, weight } : new[] { x, weight, bias };
        if (GradMode.ShouldRecord(new[] { x, gamma, beta, weight, bias }))
            throw new InvalidOperationException($"GroupNormSiluConv2d is inference-only (no backward rule) but {x.Describe()} is recording gradients: use GroupNorm, Silu and Conv2d");
        ShapeUtil.RequireRank(x, 4, "GroupNormSiluConv2d");
        ShapeUtil.RequireRank(weight, 4, "GroupNormSiluConv2d", "weight");
        var (b, c, _) = CheckGroupNorm(x, groups, gamma, beta, "GroupNormSiluConv2d");
        var s = new Conv2dShape(b, c, x.Dim(2), x.Dim(3), weight.Dim(0), weight.Dim(2), weight.Dim(3), 1, padding, padding, padding, padding);
        if (weight.Dim(1) != c || bias != null && (bias.Rank != 1 || bias.Dim(0) != s.OutC) || !Conv2dWinograd.ShouldUse(s))
        {
            // the general path, which also reports any mismatch between x, weight and bias
            var act = GroupNormSilu(x, groups, gamma, beta, eps);
            try { return Conv2d(act, weight, bias, 1, padding); }
            finally { act.Dispose(); }
        }
        InferenceMark("other ops (elementwise, copies, embeddings)");
        var affines = NativeBuffer.Rent((long)b * c * sizeof(NormSiluAffine));
        try
        {
            var pro = (NormSiluAffine*)affines.Pointer;
            Norms.GroupNormSiluAffines(x.Data, Ptr(gamma), Ptr(beta), b, c, (long)s.H * s.W, groups, eps, pro);
            InferenceMark("group and layer norms");
            var y = Tensor.Empty(s.Batch, s.OutC, s.OutH, s.OutW);
            WinogradConv(s, x, weight, bias, y, inputs, pro);
            WeightLastUse.DropPages(weight);
            return y;
        }
        finally { affines.Release(); }
    }

    /// <summary>
    /// Conv2d(UpsampleNearest2x(x), weight, bias, stride 1, padding) at inference, as Upsample2D runs it. Where the conv
    /// takes the Winograd path its input transform reads x at half the resolution, so the upsampled map (4x the size
    /// of x: 268 MB at the VAE's last level) is never written; elsewhere it is UpsampleNearest2x, then Conv2d. The
    /// conv sees the same values either way, so the output is the same.
    /// </summary>
    public static Tensor UpsampleNearest2xConv2d(Tensor x, Tensor weight, Tensor? bias, int padding)
    {
        var inputs = bias == null ? new[] { x, weight } : new[] { x, weight, bias };
        if (GradMode.ShouldRecord(inputs))
            throw new InvalidOperationException($"UpsampleNearest2xConv2d is inference-only (no backward rule) but {x.Describe()} is recording gradients: use UpsampleNearest2x and Conv2d");
        ShapeUtil.RequireRank(x, 4, "UpsampleNearest2xConv2d");
        ShapeUtil.RequireRank(weight, 4, "UpsampleNearest2xConv2d", "weight");
        var s = new Conv2dShape(x.Dim(0), x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3), weight.Dim(0), weight.Dim(2), weight.Dim(3), 1, padding, padding, padding, padding);
        if (weight.Dim(1) != s.InC || bias != null && (bias.Rank != 1 || bias.Dim(0) != s.OutC) || !Conv2dWinograd.ShouldUse(s))
        {
            // the general path, which also reports any mismatch between x, weight and bias
            var up = UpsampleNearest2x(x);
            try { return Conv2d(up, weight, bias, 1, padding); }
            finally { up.Dispose(); }
        }
        InferenceMark("other ops (elementwise, copies, embeddings)");
        var y = Tensor.Empty(s.Batch, s.OutC, s.OutH, s.OutW);
        WinogradConv(s, x, weight, bias, y, inputs, null, upsampled: true);
        WeightLastUse.DropPages(weight);
        return y;
    }

    /// <summary>x: [B, C, *spatial]; normalizes each of `groups` channel groups; gamma/beta: [C] or null.</summary>
    public static Tensor GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps)
    {
        var (b, c, spatial) = CheckGroupNorm(x, groups, gamma, beta, "GroupNorm");
        var y = Tensor.Empty(x.ShapeArray());
        bool rec = GradMode.ShouldRecord(new[] { x, gamma, beta });
        Tensor? mean = rec ? Tensor.Empty(b, groups) : null, rstd = rec ? Tensor.Empty(b, groups) : null;
        InferenceMark("other ops (elementwise, copies, embeddings)");
        Norms.GroupNormForward(x.Data, Ptr(gamma), Ptr(beta), y.Data, b, c, spatial, groups, eps, Ptr(mean), Ptr(rstd));
        InferenceMark("group and layer norms");
        if (rec) Tape.Record(y, OpKind.GroupNorm, Affine(x, gamma, beta), new[] { x, gamma ?? x, mean!, rstd! }, ints: new[] { groups, gamma != null ? 1 : 0, beta != null ? 1 : 0 });
        return y;
    }

    /// <summary>SiLU(GroupNorm(x)) fused into one pass over the output, as ResNet blocks use it; inference only.</summary>
    public static Tensor GroupNormSilu(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps)
    {
        if (GradMode.ShouldRecord(new[] { x, gamma, beta }))
            throw new InvalidOperationException($"GroupNormSilu is inference-only (no backward rule) but {x.Describe()} is recording gradients: use GroupNorm then Silu");
        var (b, c, spatial) = CheckGroupNorm(x, groups, gamma, beta, "GroupNormSilu");
        var y = Tensor.Empty(x.ShapeArray());
        InferenceMark("other ops (elementwise, copies, embeddings)");
        Norms.GroupNormSiluForward(x.Data, Ptr(gamma), Ptr(beta), y.Data, b, c, spatial, groups, eps);
        InferenceMark("group and layer norms");
        return y;
    }

    private static (int batch, int channels, long spatial) CheckGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, string op)
    {
        if (x.Rank < 2) throw new ArgumentException($"{op}: needs [B, C, ...], got {x.Describe()}");
        int b = x.Dim(0), c = x.Dim(1);
        if (groups <= 0 || c % groups != 0) throw new ArgumentException($"{op}: {c} channels of {x.Describe()} do not split into {groups} groups");
        CheckAffine(gamma, beta, c, op, x);
        return (b, c, x.Numel / ((long)b * c));
    }

    /// <summary>Normalizes over the last dim; gamma/beta: [last] or null.</summary>
    public static Tensor LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps)
    {
        if (x.Rank < 1) throw new ArgumentException($"LayerNorm: needs rank >= 1, got {x.Describe()}");
        int n = x.Dim(-1);
        CheckAffine(gamma, beta, n, "LayerNorm", x);
        long rows = x.Numel / Math.Max(1, n);
        var y = Tensor.Empty(x.ShapeArray());
        bool rec = GradMode.ShouldRecord(new[] { x, gamma, beta });
        Tensor? mean = rec ? Tensor.Empty((int)rows) : null, rstd = rec ? Tensor.Empty((int)rows) : null;
        InferenceMark("other ops (elementwise, copies, embeddings)");
        Norms.LayerNormForward(x.Data, Ptr(gamma), Ptr(beta), y.Data, rows, n, eps, Ptr(mean), Ptr(rstd));
        InferenceMark("group and layer norms");
        if (rec) Tape.Record(y, OpKind.LayerNorm, Affine(x, gamma, beta), new[] { x, gamma ?? x, mean!, rstd! }, ints: new[] { gamma != null ? 1 : 0, beta != null ? 1 : 0 });
        return y;
    }

    private static Tensor[] Affine(Tensor x, Tensor? gamma, Tensor? beta)
    {
        var l = new List<Tensor> { x };
        if (gamma != null) l.Add(gamma);
        if (beta != null) l.Add(beta);
        return l.ToArray();
    }

    private static void CheckAffine(Tensor? gamma, Tensor? beta, int n, string op, Tensor x)
    {
        if (gamma != null && gamma.Numel != n) throw new ArgumentException($"{op}: weight {gamma.Describe()} does not have {n} elements for input {x.Describe()}");
        if (beta != null && beta.Numel != n) throw new ArgumentException($"{op}: bias {beta.Describe()} does not have {n} elements for input {x.Describe()}");
    }

    private static float* Ptr(Tensor? t) => t == null ? null : t.Data;

    /// <summary>Nearest-neighbour resize of [.., H, W] to (outH, outW) with PyTorch's index rule (x2 = exact doubling).</summary>
    public static Tensor UpsampleNearest(Tensor x, int outH, int outW)
    {
        if (x.Rank < 2) throw new ArgumentException($"UpsampleNearest: needs [.., H, W], got {x.Describe()}");
        if (outH <= 0 || outW <= 0) throw new ArgumentException($"UpsampleNearest: invalid output size {outH}x{outW} for {x.Describe()}");
        int h = x.Dim(-2), w = x.Dim(-1);
        var shape = x.ShapeArray(); shape[^2] = outH; shape[^1] = outW;
        var y = Tensor.Empty(shape);
        var iy = NearestIndex(h, outH); var ix = NearestIndex(w, outW);
        long planes = x.Numel / ((long)h * w);
        float* px = x.Data, py = y.Data;
        Par.ForRange(planes, Math.Max(1, 16384 / ((long)outH * outW)), (s, e) =>
        {
            for (long p = s; p < e; p++)
                for (int oy = 0; oy < outH; oy++)
                {
                    float* src = px + (p * h + iy[oy]) * w;
                    float* dst = py + (p * outH + oy) * outW;
                    for (int ox = 0; ox < outW; ox++) dst[ox] = src[ix[ox]];
                }
        });
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.Upsample, new[] { x });
        return y;
    }

    /// <summary>
    /// Max over kernel x kernel windows with the given stride and implicit -inf padding (at most kernel/2, as PyTorch
    /// requires), floor mode. x: [.., H, W].
    /// </summary>
    public static Tensor MaxPool2d(Tensor x, int kernel, int stride, int padding = 0)
    {
        var (h, w, shape) = PoolShape(x, kernel, stride, padding, "MaxPool2d");
        var y = Tensor.Empty(shape);
        Kernels.MaxPool.Forward(x.Data, y.Data, x.Numel / ((long)h * w), h, w, kernel, stride, padding);
        if (GradMode.ShouldRecord(x)) Tape.Record(y, OpKind.MaxPool2d, new[] { x }, new[] { x }, ints: new[] { kernel, stride, padding });
        return y;
    }

    /// <summary>Checks a pooling window against x: [.., H, W] and returns H, W and the output shape.</summary>
    internal static (int H, int W, int[] OutShape) PoolShape(Tensor x, int kernel, int stride, int padding, string op)
    {
        if (x.Rank < 2) throw new ArgumentException($"{op}: needs [.., H, W], got {x.Describe()}");
        if (kernel < 1 || stride < 1) throw new ArgumentException($"{op}: kernel {kernel} and stride {stride} must be at least 1");
        if (padding < 0 || padding > kernel / 2) throw new ArgumentException($"{op}: padding {padding} must be between 0 and half the kernel {kernel}");
        int h = x.Dim(-2), w = x.Dim(-1);
        if (h + 2 * padding < kernel || w + 2 * padding < kernel) throw new ArgumentException($"{op}: {x.Describe()} (padded by {padding}) is smaller than the {kernel}x{kernel} window");
        var shape = x.ShapeArray();
        shape[^2] = Kernels.MaxPool.OutSize(h, kernel, stride, padding); shape[^1] = Kernels.MaxPool.OutSize(w, kernel, stride, padding);
        return (h, w, shape);
    }

    public static Tensor UpsampleNearest2x(Tensor x) => UpsampleNearest(x, x.Dim(-2) * 2, x.Dim(-1) * 2);

    internal static int[] NearestIndex(int inSize, int outSize)
    {
        var idx = new int[outSize];
        // PyTorch: exact integer shift when doubling, otherwise floor(i * (float)in/out) clamped.
        float scale = (float)inSize / outSize;
        for (int i = 0; i < outSize; i++)
            idx[i] = outSize == 2 * inSize ? i >> 1 : Math.Min((int)MathF.Floor(i * scale), inSize - 1);
        return idx;
    }

    /// <summary>weight: [V, D]; ids of any shape -> [*ids.shape, D].</summary>
    public static Tensor Embedding(Tensor weight, int[] ids, params int[] idShape)
    {
        ShapeUtil.RequireRank(weight, 2, "Embedding", "weight");
        if (ShapeUtil.Numel(idShape) != ids.Length) throw new ArgumentException($"Embedding: {ids.Length} ids do not fill shape {ShapeUtil.Format(idShape)}");
        int v = weight.Dim(0), d = weight.Dim(1);
        var shape = idShape.Append(d).ToArray();
        var y = Tensor.Empty(shape);
        float* pw = weight.Data, py = y.Data;
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)v) throw new ArgumentException($"Embedding: id {ids[i]} at position {i} is outside the table {weight.Describe()}");
            Buffer.MemoryCopy(pw + (long)ids[i] * d, py + (long)i * d, d * 4L, d * 4L);
        }
        if (GradMode.ShouldRecord(weight)) Tape.Record(y, OpKind.Embedding, new[] { weight }, ints: ids);
        return y;
    }

    /// <summary>
    /// Fused multi-head attention. q: [B, Tq, H*D], k/v: [B, Tk, H*D] (the linear projections' layout) -> [B, Tq, H*D].
    /// scale defaults to 1/sqrt(D). causal masks key j &gt; query i.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, int heads, bool causal = false, float? scale = null)
    {
        ShapeUtil.RequireRank(q, 3, "Attention", "q"); ShapeUtil.RequireRank(k, 3, "Attention", "k"); ShapeUtil.RequireRank(v, 3, "Attention", "v");
        int b = q.Dim(0), tq = q.Dim(1), c = q.Dim(2), tk = k.Dim(1);
        if (k.Dim(0) != b || v.Dim(0) != b || k.Dim(2) != c || v.Dim(2) != c || v.Dim(1) != tk)
            throw new ArgumentException($"Attention: q {q.Describe()}, k {k.Describe()}, v {v.Describe()} do not agree");
        if (heads <= 0 || c % heads != 0) throw new ArgumentException($"Attention: width {c} of {q.Describe()} does not split into {heads} heads");
        var s = new AttentionShape(b, heads, tq, tk, c / heads, causal);
        float sc = scale ?? 1f / MathF.Sqrt(s.HeadDim);
        var o = Tensor.Empty(b, tq, c);
        bool rec = GradMode.ShouldRecord(new[] { q, k, v });
        var lse = rec ? Tensor.Empty(b, heads, tq) : null;
        InferenceMark("other ops (elementwise, copies, embeddings)");
        Kernels.Attention.Forward(s, q.Data, k.Data, v.Data, o.Data, Ptr(lse), sc);
        FlopCounter.Add(s.Flops);
        InferenceMark("attention");
        if (rec) Tape.Record(o, OpKind.Attention, new[] { q, k, v }, new[] { q, k, v, o.Detach(), lse! }, ints: new[] { heads, causal ? 1 : 0 }, floats: new[] { sc });
        return o;
    }
}
