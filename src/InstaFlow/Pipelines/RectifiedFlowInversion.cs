// Image to noise for the InstaFlow pipeline (asked for in gnobitab/InstaFlow#23): encode the image (posterior mean,
// scaled), then invert the Euler sampler under the prompt, on the pipeline's own field. `generate --init-latents`
// with the same prompt, steps and guidance then reconstructs the image, and another prompt edits it.
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

public sealed record InversionRequest
{
    public required string Prompt { get; init; }
    public string? NegativePrompt { get; init; }
    public int Steps { get; init; } = 1;
    public float Guidance { get; init; }
    /// <summary>Fixed-point iterations per step (1: the plain z0 = x1 - v(x1) estimate; more: closer to the exact inverse).</summary>
    public int Iterations { get; init; } = 1;
}

public static class RectifiedFlowInversion
{
    /// <summary>An RGB uint8 HWC image -> the scaled latents [1, C, H/f, W/f] the pipeline's sampler ends in.</summary>
    public static Tensor EncodeImage(ITextToImageModel model, byte[] hwc, int width, int height)
    {
        ImageSize.Check("the image's width", width, ImageSize.Multiple(model));
        ImageSize.Check("the image's height", height, ImageSize.Multiple(model));
        using var _ = GradMode.NoGrad();
        var image = ImageTensors.ToTensorSigned(hwc, 1, width, height);
        return model.LatentEncoder.EncodeLatents(image);
    }

    /// <summary>Scaled latents [1, C, h, w] -> unit noise [1, C, h, w] (the pipeline's InitLatents) for the request's prompt.</summary>
    public static Tensor InvertLatents(ITextToImageModel model, Tensor latents, InversionRequest req)
    {
        if (req.Steps < 1 || req.Steps > 1000) throw new InvalidInputException($"steps must be between 1 and 1000, got {req.Steps}");
        using var _ = GradMode.NoGrad();
        var cond = new RectifiedFlowPipeline(model).Encode([req.Prompt], req.NegativePrompt == null ? null : [req.NegativePrompt], req.Guidance);
        return EulerInversion.Invert(RectifiedFlowPipeline.Field(model.Denoiser, cond, req.Guidance), latents, req.Steps, req.Iterations);
    }
}
