// The stages every SD-1.5-family text-to-image loop shares (InstaFlow and the SD teacher): request checks,
// tokenize + text encoder with the cat([negative, positive]) CFG batch, initial noise, guidance, VAE decode.
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Pipelines;

internal static class PipelineSteps
{
    public static int[] Tokenize(SdComponents model, IReadOnlyList<string> prompts)
    {
        var all = new List<int>();
        foreach (var p in prompts) all.AddRange(model.Tokenizer.Tokenize(p, model.TextEncoder.Config.MaxPositionEmbeddings).Ids);
        return all.ToArray();
    }

    public static IEnumerable<string> TruncationWarnings(SdComponents model, IEnumerable<string> prompts)
    {
        int max = model.TextEncoder.Config.MaxPositionEmbeddings;
        foreach (var p in prompts)
        {
            var t = model.Tokenizer.Tokenize(p, max);
            if (t.Truncated) yield return $"prompt is longer than {max} tokens; these words were cut: \"{t.CutText}\"";
        }
    }

    /// <summary>What one Generate call works with, after the request passed <see cref="Validate"/>.</summary>
    public sealed record Run(int Batch, int Width, int Height, bool Cfg, Timer Timer);

    /// <summary>Validates the request and resolves its size (default: the UNet sample size) and CFG (guidance &gt; 1).</summary>
    public static Run Prepare(SdComponents model, GenerationRequest req, int defaultWidth, int defaultHeight, CancellationToken cancellation = default)
    {
        Validate(model, req);
        return new Run(req.Prompts.Count, req.Width ?? defaultWidth, req.Height ?? defaultHeight, req.Guidance > 1f, new Timer(cancellation));
    }

    private static void Validate(SdComponents model, GenerationRequest r)
    {
        if (r.Prompts.Count == 0) throw new ArgumentException("no prompt given");
        if (r.Steps < 1 || r.Steps > 1000) throw new ArgumentException($"steps must be between 1 and 1000, got {r.Steps}");
        if (float.IsNaN(r.Guidance) || r.Guidance < 0 || r.Guidance > 100) throw new ArgumentException($"guidance must be between 0 and 100, got {r.Guidance}");
        if (r.NegativePrompts != null && r.NegativePrompts.Count != r.Prompts.Count)
            throw new ArgumentException($"{r.NegativePrompts.Count} negative prompts for {r.Prompts.Count} prompts");
        int f = model.Vae.Config.ScaleFactor;
        foreach (var (name, v) in new[] { ("width", r.Width), ("height", r.Height) })
            if (v is int x && (x <= 0 || x % 8 != 0 || x % f != 0 || x > 4096))
                throw new ArgumentException($"{name} {x} is not usable: it must be a positive multiple of 8 (and of the VAE factor {f}), at most 4096");
    }

    /// <summary>Encoder hidden states for the UNet: the prompts, or cat([negative, positive]) when cfg is on.</summary>
    public static Tensor EncodePrompts(SdComponents model, GenerationRequest req, bool cfg, Action<string, Tensor>? hook, Action<string> mark)
    {
        int b = req.Prompts.Count;
        var ids = Tokenize(model, req.Prompts);
        int[]? negIds = cfg ? Tokenize(model, req.NegativePrompts ?? Enumerable.Repeat("", b).ToList()) : null;
        mark("tokenize");
        var embeds = model.TextEncoder.Forward(ids, b).LastHiddenState;
        hook?.Invoke("prompt_embeds", embeds);
        var context = embeds;
        if (cfg)
        {
            var neg = model.TextEncoder.Forward(negIds!, b).LastHiddenState;
            hook?.Invoke("negative_prompt_embeds", neg);
            context = Ops.Concat(new[] { neg, embeds }, 0);
        }
        mark("text_encoder");
        return context;
    }

    /// <summary>Unit-variance noise [B, C, h, w]: the request's InitLatents (copied) or drawn from the seed.</summary>
    public static Tensor InitialNoise(SdComponents model, GenerationRequest req, int width, int height)
    {
        int b = req.Prompts.Count, f = model.Vae.Config.ScaleFactor, lc = model.Unet.Config.InChannels;
        var shape = new[] { b, lc, height / f, width / f };
        var noise = req.InitLatents?.Clone() ?? new TorchGenerator(req.Seed).Randn(shape);
        if (!ShapeUtil.SameShape(noise.Shape, shape))
            throw new ArgumentException($"initial latents {noise.Describe()} do not match [{b}, {lc}, {height / f}, {width / f}] for {b} prompt(s) at {width}x{height}");
        return noise;
    }

    /// <summary>Classifier-free guidance on a cat([negative, positive]) output: neg + s * (pos - neg).</summary>
    public static Tensor Guide(Tensor output, int batch, float scale)
    {
        var neg = Ops.Narrow(output, 0, 0, batch);
        var pos = Ops.Narrow(output, 0, batch, batch);
        return Ops.Add(neg, Ops.MulScalar(Ops.Sub(pos, neg), scale));
    }

    /// <summary>
    /// The pipeline's velocity field in flow time t (0 = noise): the UNet at model time 1000 (1 - t) on the encoded
    /// prompts, classifier-free guided over cat([negative, positive]) when cfg is on. For inversion and straightness.
    /// </summary>
    public static VelocityFn Field(SdComponents model, Tensor context, bool cfg, float guidance)
    {
        return (x, t) =>
        {
            var input = cfg ? Ops.Concat([x, x], 0) : x;
            var tv = Enumerable.Repeat((float)((1.0 - t) * 1000.0), input.Dim(0)).ToArray();
            var o = model.Unet.Forward(input, tv, context);
            return cfg ? Guide(o, x.Dim(0), guidance) : o;
        };
    }

    /// <summary>Decode (VAE, or TAESD in its place) of latents / scaling_factor and the uint8 HWC postprocess.</summary>
    public static byte[][] Decode(SdComponents model, Tensor latents, Action<string, Tensor>? hook, Action<string> mark)
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
