// diffusers ResnetBlock2D: GroupNorm -> SiLU -> conv1 (+ time embedding projection) -> GroupNorm -> SiLU -> conv2,
// plus a 1x1 conv_shortcut when the channel count changes. Shared by the UNet (with time embedding) and the VAE.
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Models.Diffusers;

public sealed class ResnetBlock2D : Module
{
    public readonly GroupNorm Norm1, Norm2;
    public readonly Conv2d Conv1, Conv2;
    public readonly Linear? TimeEmbProj;
    public readonly Conv2d? ConvShortcut;
    private readonly float _outputScale;

    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, float eps, float outputScaleFactor = 1f)
    {
        Norm1 = Child("norm1", new GroupNorm(groups, inChannels, eps));
        Conv1 = Child("conv1", new Conv2d(inChannels, outChannels, 3, padding: 1));
        if (tembChannels is int tc) TimeEmbProj = Child("time_emb_proj", new Linear(tc, outChannels));
        Norm2 = Child("norm2", new GroupNorm(groups, outChannels, eps));
        Conv2 = Child("conv2", new Conv2d(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels) ConvShortcut = Child("conv_shortcut", new Conv2d(inChannels, outChannels, 1));
        _outputScale = outputScaleFactor;
    }

    /// <summary>x: [B, Cin, H, W], tembAct: SiLU(time embedding) [B, T] or null -> [B, Cout, H, W].</summary>
    public Tensor Forward(Tensor x, Tensor? tembAct)
    {
        // x: [B, Cin, H, W]
        using var scope = TensorScope.ForInference();
        var h = Conv1.Forward(Act.GroupNormSilu(Norm1, x));
        if (TimeEmbProj != null && tembAct != null)
        {
            var t = TimeEmbProj.Forward(tembAct);
            h = Ops.Add(h, Ops.Reshape(t, t.Dim(0), t.Dim(1), 1, 1));
        }
        h = Conv2.Forward(Act.GroupNormSilu(Norm2, h));
        var skip = ConvShortcut != null ? ConvShortcut.Forward(x) : x;
        var y = Ops.Add(skip, h);
        return scope.KeepOrSelf(_outputScale == 1f ? y : Ops.MulScalar(y, 1f / _outputScale));
    }
}

/// <summary>Norm followed by SiLU, the pattern at the start of every ResNet half-block: one fused pass at inference.</summary>
internal static class Act
{
    public static Tensor GroupNormSilu(GroupNorm norm, Tensor x) =>
        GradMode.ShouldRecord(new[] { x, norm.Weight.Value, norm.Bias.Value })
            ? Ops.Silu(norm.Forward(x))
            : Ops.GroupNormSilu(x, norm.Groups, norm.Weight.Value, norm.Bias.Value, norm.Eps);
}
