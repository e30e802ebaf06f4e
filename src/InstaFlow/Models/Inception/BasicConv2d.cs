// torchvision's BasicConv2d as the FID Inception uses it: convolution without bias, eval-mode BatchNorm (eps 0.001),
// ReLU. State-dict names `conv.weight` and `bn.weight|bias|running_mean|running_var`, as in the checkpoint.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Inception;

public sealed class BasicConv2d : Module
{
    public const float BatchNormEps = 1e-3f;

    private readonly Parameter _weight;
    private readonly BatchNorm2d _bn;
    private readonly int _stride, _padH, _padW;

    /// <summary>A conv of kernel (kh, kw) with zero padding (padH, padW) on each side of its axis.</summary>
    public BasicConv2d(int inChannels, int outChannels, int kh, int kw, int stride = 1, int padH = 0, int padW = 0)
    {
        InChannels = inChannels; OutChannels = outChannels;
        _weight = Child("conv", new WeightOnly(outChannels, inChannels, kh, kw)).Weight;
        _bn = Child("bn", new BatchNorm2d(outChannels, BatchNormEps));
        _stride = stride; _padH = padH; _padW = padW;
    }

    public int InChannels { get; }
    public int OutChannels { get; }

    // x: [B, Cin, H, W] -> [B, Cout, H', W']
    public Tensor Forward(Tensor x)
    {
        var conv = Ops.Conv2d(x, _weight.Value, null, _stride, _padH, _padH, _padW, _padW);
        var y = _bn.Forward(conv, relu: true);
        // the pre-norm output is the largest temporary of a block; hand its memory back now rather than at scope end
        conv.Dispose();
        return y;
    }

    /// <summary>A bias-free conv's weight: torchvision keeps it in a child named `conv`.</summary>
    private sealed class WeightOnly : Module
    {
        public WeightOnly(params int[] shape) => Weight = Param("weight", shape);
        public Parameter Weight { get; }
    }
}
