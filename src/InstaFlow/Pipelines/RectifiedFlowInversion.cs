// Image to noise for the InstaFlow pipeline (asked for in gnobitab/InstaFlow#23): VAE-encode the image (posterior
// mean, scaled), then invert the Euler sampler under the prompt. `generate --init-latents` with the same prompt,
// steps and guidance then reconstructs the image, and another prompt edits it.
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
    public static Tensor EncodeImage(SdComponents model, byte[] hwc, int width, int height)
    {
        int f = model.Vae.Config.ScaleFactor;
        if (width % f != 0 || height % f != 0 || width % 8 != 0 || height % 8 != 0)
            throw new ArgumentException($"the image is {width}x{height}; its sides must be multiples of 8 (and of the VAE factor {f})");
        using var _ = GradMode.NoGrad();
        var chw = ImageTensors.ToChwUnit(hwc, width, height);
        var image = Ops.AddScalar(Ops.MulScalar(Tensor.FromArray(chw, 1, 3, height, width), 2f), -1f);
        return Ops.MulScalar(model.Vae.Encode(image).Mean, model.Vae.Config.ScalingFactor);
    }

    /// <summary>Scaled latents [1, C, h, w] -> unit noise [1, C, h, w] (the pipeline's InitLatents) for the request's prompt.</summary>
    public static Tensor InvertLatents(SdComponents model, Tensor latents, InversionRequest req)
    {
        if (req.Steps < 1 || req.Steps > 1000) throw new ArgumentException($"steps must be between 1 and 1000, got {req.Steps}");
        using var _ = GradMode.NoGrad();
        var gen = new GenerationRequest { Prompts = [req.Prompt], NegativePrompts = req.NegativePrompt == null ? null : [req.NegativePrompt], Steps = req.Steps, Guidance = req.Guidance };
        bool cfg = req.Guidance > 1f;
        var context = PipelineSteps.EncodePrompts(model, gen, cfg, null, _ => { });
        return EulerInversion.Invert(PipelineSteps.Field(model, context, cfg, req.Guidance), latents, req.Steps, req.Iterations);
    }
}
