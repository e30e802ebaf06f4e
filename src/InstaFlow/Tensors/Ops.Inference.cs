// Forward-only ops for inference networks (the FID Inception): average pooling with padding, bilinear resize and
// inference BatchNorm. They have no backward rule and refuse inputs that are recording gradients.
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tensors;

public static unsafe partial class Ops
{
    /// <summary>
    /// Mean over kernel x kernel windows with stride and zero padding, floor mode; countIncludePad false divides border
    /// windows by their in-image cells only. x: [.., H, W].
    /// </summary>
    public static Tensor AvgPool2d(Tensor x, int kernel, int stride, int padding = 0, bool countIncludePad = true)
    {
        RequireNoRecording(x, "AvgPool2d");
        var (h, w, shape) = PoolShape(x, kernel, stride, padding, "AvgPool2d");
        var y = Tensor.Empty(shape);
        Kernels.AvgPool.Forward(x.Data, y.Data, x.Numel / ((long)h * w), h, w, kernel, stride, padding, countIncludePad);
        return y;
    }

    /// <summary>Bilinear resize of [.., H, W] to (outH, outW): F.interpolate(mode='bilinear', align_corners=False), no antialias.</summary>
    public static Tensor ResizeBilinear(Tensor x, int outH, int outW)
    {
        RequireNoRecording(x, "ResizeBilinear");
        if (x.Rank < 2) throw new ArgumentException($"ResizeBilinear: needs [.., H, W], got {x.Describe()}");
        if (outH <= 0 || outW <= 0) throw new ArgumentException($"ResizeBilinear: invalid output size {outH}x{outW} for {x.Describe()}");
        int h = x.Dim(-2), w = x.Dim(-1);
        var shape = x.ShapeArray(); shape[^2] = outH; shape[^1] = outW;
        var y = Tensor.Empty(shape);
        Kernels.Bilinear.Forward(x.Data, y.Data, x.Numel / ((long)h * w), h, w, outH, outW);
        return y;
    }

    /// <summary>
    /// Eval-mode BatchNorm of x: [B, C, ..] with running statistics, optionally followed by ReLU. Like PyTorch's CPU
    /// kernel it folds the statistics into a = gamma / sqrt(var + eps) and b = beta - mean * a, then y = x * a + b.
    /// </summary>
    public static Tensor BatchNormInference(Tensor x, Tensor mean, Tensor var, Tensor gamma, Tensor beta, float eps, bool relu = false)
    {
        RequireNoRecording(x, "BatchNormInference");
        if (x.Rank < 2) throw new ArgumentException($"BatchNormInference: needs [B, C, ..], got {x.Describe()}");
        int b = x.Dim(0), c = x.Dim(1);
        foreach (var t in new[] { mean, var, gamma, beta })
            if (t.Numel != c) throw new ArgumentException($"BatchNormInference: {t.Describe()} does not have {c} elements for input {x.Describe()}");
        var scale = new float[c];
        var shift = new float[c];
        for (int i = 0; i < c; i++)
        {
            scale[i] = 1f / MathF.Sqrt(var.Data[i] + eps) * gamma.Data[i];
            shift[i] = beta.Data[i] - mean.Data[i] * scale[i];
        }
        var y = Tensor.Empty(x.ShapeArray());
        fixed (float* ps = scale, pb = shift)
            Kernels.ChannelAffine.Forward(x.Data, y.Data, b, c, x.Numel / ((long)b * c), ps, pb, relu);
        return y;
    }

    private static void RequireNoRecording(Tensor x, string op)
    {
        if (GradMode.ShouldRecord(x)) throw new InvalidOperationException($"{op} is forward-only (no backward rule) but {x.Describe()} is recording gradients; run it under GradMode.NoGrad()");
    }
}
