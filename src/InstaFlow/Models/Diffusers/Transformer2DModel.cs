// diffusers Transformer2DModel (continuous input): GroupNorm, proj_in (1x1 conv or linear), BasicTransformerBlocks
// (self-attention, cross-attention, GEGLU feed-forward, each pre-LayerNorm with a residual), proj_out, residual.
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Models.Diffusers;

public sealed class Transformer2DModel : Module
{
    private readonly bool _linearProjection;
    public readonly GroupNorm Norm;
    public readonly Module ProjIn, ProjOut;
    public readonly BasicTransformerBlock[] Blocks;

    public Transformer2DModel(int heads, int headDim, int channels, int crossAttentionDim, int groups, bool useLinearProjection, int layers)
    {
        _linearProjection = useLinearProjection;
        int inner = heads * headDim;
        Norm = Child("norm", new GroupNorm(groups, channels, 1e-6f));
        ProjIn = Child<Module>("proj_in", useLinearProjection ? new Linear(channels, inner) : new Conv2d(channels, inner, 1));
        var list = Child("transformer_blocks", new ModuleList());
        Blocks = Enumerable.Range(0, layers).Select(_ => list.Add(new BasicTransformerBlock(inner, heads, headDim, crossAttentionDim))).ToArray();
        ProjOut = Child<Module>("proj_out", useLinearProjection ? new Linear(inner, channels) : new Conv2d(inner, channels, 1));
    }

    /// <summary>x: [B, C, H, W], context: [B, T, Ck] -> [B, C, H, W].</summary>
    public Tensor Forward(Tensor x, Tensor context)
    {
        // x: [B, C, H, W]
        int b = x.Dim(0), h = x.Dim(2), w = x.Dim(3);
        using var scope = TensorScope.ForInference();
        // 1. norm and project in, then flatten to a sequence [B, H*W, inner]
        var hs = Norm.Forward(x);
        if (!_linearProjection) hs = ToSequence(((Conv2d)ProjIn).Forward(hs));
        else hs = ((Linear)ProjIn).Forward(ToSequence(hs));
        // 2. transformer blocks
        foreach (var blk in Blocks) hs = blk.Forward(hs, context);
        // 3. project out, back to [B, C, H, W], residual
        Tensor o = !_linearProjection
            ? ((Conv2d)ProjOut).Forward(ToImage(hs, b, h, w))
            : ToImage(((Linear)ProjOut).Forward(hs), b, h, w);
        return scope.KeepOrSelf(Ops.Add(o, x));
    }

    internal static Tensor ToSequence(Tensor x) =>
        Ops.Reshape(Ops.Permute(x, 0, 2, 3, 1), x.Dim(0), x.Dim(2) * x.Dim(3), x.Dim(1));

    internal static Tensor ToImage(Tensor seq, int b, int h, int w) =>
        Ops.Permute(Ops.Reshape(seq, b, h, w, seq.Dim(2)), 0, 3, 1, 2);
}

public sealed class BasicTransformerBlock : Module
{
    public readonly LayerNorm Norm1, Norm2, Norm3;
    public readonly Attention Attn1, Attn2;
    public readonly FeedForward Ff;

    public BasicTransformerBlock(int dim, int heads, int headDim, int crossAttentionDim)
    {
        Norm1 = Child("norm1", new LayerNorm(dim, 1e-5f));
        Attn1 = Child("attn1", new Attention(dim, null, heads, headDim, qkvBias: false));
        Norm2 = Child("norm2", new LayerNorm(dim, 1e-5f));
        Attn2 = Child("attn2", new Attention(dim, crossAttentionDim, heads, headDim, qkvBias: false));
        Norm3 = Child("norm3", new LayerNorm(dim, 1e-5f));
        Ff = Child("ff", new FeedForward(dim));
    }

    public Tensor Forward(Tensor x, Tensor context)
    {
        // x: [B, T, C], context: [B, Tk, Ck]
        using var scope = TensorScope.ForInference();
        x = Ops.Add(Attn1.Forward(Norm1.Forward(x)), x);
        x = Ops.Add(Attn2.Forward(Norm2.Forward(x), context), x);
        return scope.KeepOrSelf(Ops.Add(Ff.Forward(Norm3.Forward(x)), x));
    }
}

/// <summary>GEGLU feed-forward: net.0.proj (C -> 2*4C) split into (h, gate), h * gelu(gate), then net.2 (4C -> C).</summary>
public sealed class FeedForward : Module
{
    public readonly Linear Proj, Out;

    public FeedForward(int dim, int mult = 4)
    {
        int inner = dim * mult;
        var net = Child("net", new ModuleList());
        var geglu = net.Add(new Geglu(dim, inner));
        Proj = geglu.Proj;
        net.Add(new Dropout());
        Out = net.Add(new Linear(inner, dim));
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, T, C]
        var hg = Proj.Forward(x);
        return Out.Forward(Ops.GeluGate(hg));
    }

    private sealed class Geglu : Module
    {
        public readonly Linear Proj;
        public Geglu(int dim, int inner) { Proj = Child("proj", new Linear(dim, inner * 2)); }
    }

    /// <summary>net.1 is dropout: no weights, and the identity at inference (p = 0 in SD configs).</summary>
    private sealed class Dropout : Module;
}
