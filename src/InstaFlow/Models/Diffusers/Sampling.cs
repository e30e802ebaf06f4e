// Resolution changes: Downsample2D (strided 3x3 conv; the VAE's variant pads right/bottom by one first) and
// Upsample2D (nearest x2, or to an explicit size, then a 3x3 conv).
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Models.Diffusers;

public sealed class Downsample2D : Module
{
    private readonly int _padding;
    public readonly Conv2d Conv;

    /// <summary>padding 1: symmetric (UNet); padding 0: zero-pad (left 0, right 1, top 0, bottom 1) first (VAE encoder).</summary>
    public Downsample2D(int channels, int padding)
    {
        _padding = padding;
        Conv = Child("conv", new Conv2d(channels, channels, 3, stride: 2, padding: padding));
    }

    public Tensor Forward(Tensor x) =>
        // x: [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]
        _padding == 0 ? Conv.Forward(x, 0, 1, 0, 1) : Conv.Forward(x);
}

public sealed class Upsample2D : Module
{
    public readonly Conv2d Conv;

    public Upsample2D(int channels) { Conv = Child("conv", new Conv2d(channels, channels, 3, padding: 1)); }

    /// <summary>x: [B, C, H, W] -> [B, C, 2H, 2W], or [B, C, size] when the skip connection's size is given.</summary>
    public Tensor Forward(Tensor x, (int H, int W)? size = null)
    {
        // at inference a plain doubling is one op that need not write the upsampled map out
        if ((size == null || size == (2 * x.Dim(2), 2 * x.Dim(3))) && Conv.Stride == 1
            && !GradMode.ShouldRecord(new[] { x, Conv.Weight.Value, Conv.Bias?.Value }))
            return Ops.UpsampleNearest2xConv2d(x, Conv.Weight.Value, Conv.Bias?.Value, Conv.Padding);
        using var scope = TensorScope.ForInference();
        var up = size is { } s ? Ops.UpsampleNearest(x, s.H, s.W) : Ops.UpsampleNearest2x(x);
        var y = Conv.Forward(up);
        if (scope != null) up.Dispose(); // the 4x larger upsampled map is not needed past the conv
        return scope.KeepOrSelf(y);
    }
}
