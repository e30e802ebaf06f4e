// The stages every SD-1.5-family text-to-image loop shares (InstaFlow and the SD teacher): request checks, the prompt
// encodings (and the negative ones when guidance is on), the seeded initial noise, decoding and stage timings.
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Pipelines;

/// <summary>The prompts' encoder hidden states [B, T, D], and the negative prompts' when guidance is on.</summary>
public sealed record Conditioning(Tensor Context, Tensor? Negative);

internal static class PipelineSteps
{
    /// <summary>What one Generate call works with, after the request passed <see cref="Validate"/>.</summary>
    public sealed record Run(int Batch, int Width, int Height, bool Guided, Timer Timer);

    /// <summary>Validates the request and resolves its size (default: the model's) and guidance (Guidance.IsOn).</summary>
    public static Run Prepare(ITextToImageModel model, GenerationRequest req, CancellationToken cancellation = default)
    {
        Validate(model, req);
        var (w, h) = ImageSize.Resolve(model, req.Width, req.Height);
        return new Run(req.Prompts.Count, w, h, Guidance.IsOn(req.Guidance), new Timer(cancellation));
    }

    private static void Validate(ITextToImageModel model, GenerationRequest r)
    {
        if (r.Prompts.Count == 0) throw new InvalidInputException("no prompt given");
        if (r.Steps < 1 || r.Steps > 1000) throw new InvalidInputException($"steps must be between 1 and 1000, got {r.Steps}");
        if (float.IsNaN(r.Guidance) || r.Guidance < 0 || r.Guidance > 100) throw new InvalidInputException($"guidance must be between 0 and 100, got {r.Guidance}");
        if (r.NegativePrompts != null && r.NegativePrompts.Count != r.Prompts.Count)
            throw new InvalidInputException($"{r.NegativePrompts.Count} negative prompts for {r.Prompts.Count} prompts");
    }

    /// <summary>The prompts' hidden states and, when guided, the negatives' ("" for each prompt by default, as pipeline_rf.py).</summary>
    public static Conditioning Encode(ITextToImageModel model, IReadOnlyList<string> prompts, IReadOnlyList<string>? negatives, bool guided,
        Action<string, Tensor>? hook, Action<string> mark)
    {
        var context = model.PromptEncoder.Encode(prompts);
        hook?.Invoke("prompt_embeds", context);
        Tensor? negative = null;
        if (guided)
        {
            negative = model.PromptEncoder.Encode(negatives ?? Enumerable.Repeat("", prompts.Count).ToList());
            hook?.Invoke("negative_prompt_embeds", negative);
        }
        mark("text_encoder");
        return new Conditioning(context, negative);
    }

    /// <summary>Unit-variance noise [B, C, h, w]: the request's InitLatents (copied) or drawn by the seed policy.</summary>
    public static Tensor InitialNoise(ITextToImageModel model, GenerationRequest req, int width, int height)
    {
        int b = req.Prompts.Count, f = model.Decoder.ScaleFactor, lc = model.Denoiser.LatentChannels;
        int[] sample = [lc, height / f, width / f];
        if (req.InitLatents == null) return SeedPolicy.Noise(req.Seed, b, sample);
        if (!ShapeUtil.SameShape(req.InitLatents.Shape, [b, .. sample]))
            throw new InvalidInputException($"initial latents {req.InitLatents.Describe()} do not match [{b}, {lc}, {height / f}, {width / f}] for {b} prompt(s) at {width}x{height}");
        return req.InitLatents.Clone();
    }

    /// <summary>Decode (VAE, or TAESD in its place) of latents / scaling_factor and the uint8 HWC postprocess.</summary>
    public static byte[][] Decode(ITextToImageModel model, Tensor latents, Action<string, Tensor>? hook, Action<string> mark)
    {
        // The UNet's pooled activations do not fit the decoder's much larger maps: give them back before decoding,
        // so the peak is the weights plus the decoder's own working set.
        BufferPool.Trim();
        var raw = model.Decoder.Decode(Ops.Div(latents, Tensor.Scalar(model.Decoder.ScalingFactor)));
        hook?.Invoke("image_raw", raw);
        mark("vae_decode");
        var images = ImageTensors.ToUint8Hwc(raw);
        mark("postprocess");
        return images;
    }

    /// <summary>Per-stage wall times (each mark records the time since the previous one); a mark is also where a
    /// cancelled generation stops.</summary>
    public sealed class Timer(CancellationToken cancellation)
    {
        private readonly Stopwatch _sw = Stopwatch.StartNew();
        public List<StageTiming> Timings { get; } = new();

        public void Mark(string stage)
        {
            Timings.Add(new StageTiming(stage, _sw.Elapsed.TotalSeconds));
            cancellation.ThrowIfCancellationRequested();
            _sw.Restart();
        }
    }
}
