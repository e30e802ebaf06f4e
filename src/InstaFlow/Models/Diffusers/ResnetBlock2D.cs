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
        // x: [B, Cin, H, W]; a dropped request stops here rather than after a whole (seconds-long) block
        Cooperative.ThrowIfCancellationRequested();
        using var scope = TensorScope.ForInference();
        // At inference each temporary is released as soon as it is consumed and the adds happen in place, so a block
        // holds about three activations at a time (the VAE's 512x512 levels are 128 MB each).
        bool eager = scope != null;
        var h = Act.GroupNormSiluConv(Norm1, Conv1, x);
        if (TimeEmbProj != null && tembAct != null)
        {
            var t = TimeEmbProj.Forward(tembAct);
            var t4 = Ops.Reshape(t, t.Dim(0), t.Dim(1), 1, 1);
            if (eager) Ops.AddInPlace(h, t4);
            else h = Ops.Add(h, t4);
        }
        var h2 = Act.GroupNormSiluConv(Norm2, Conv2, h);
        if (eager) h.Dispose();
        var skip = ConvShortcut != null ? ConvShortcut.Forward(x) : x;
        Tensor y;
        if (eager)
        {
            Ops.AddInPlace(h2, skip);
            if (!ReferenceEquals(skip, x)) skip.Dispose();
            y = h2;
        }
        else y = Ops.Add(skip, h2);
        return scope.KeepOrSelf(_outputScale == 1f ? y : Ops.MulScalar(y, 1f / _outputScale));
    }
}

/// <summary>Norm, SiLU and conv, every ResNet half-block: fused at inference (the activation is not stored where it can be).</summary>
internal static class Act
{
    public static Tensor GroupNormSiluConv(GroupNorm norm, Conv2d conv, Tensor x) =>
        GradMode.ShouldRecord(new[] { x, norm.Weight.Value, norm.Bias.Value, conv.Weight.Value, conv.Bias?.Value })
            ? conv.Forward(Ops.Silu(norm.Forward(x)))
            : Ops.GroupNormSiluConv2d(x, norm.Groups, norm.Weight.Value, norm.Bias.Value, norm.Eps, conv.Weight.Value, conv.Bias?.Value, conv.Padding);
}
