// InstaFlow's text-to-image recipe (code/pipeline_rf.py): text embeddings, Euler steps of the rectified-flow ODE
// from noise (t = 1000 is noise) with optional classifier-free guidance, VAE decode, uint8 images.
using System.Diagnostics;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Pipelines;

public sealed record GenerationRequest
{
    public required IReadOnlyList<string> Prompts { get; init; }
    /// <summary>One per prompt, or null for the pipeline default ("" when guidance &gt; 1).</summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }
    public int Steps { get; init; } = 1;
    public float Guidance { get; init; }
    public ulong Seed { get; init; }
    /// <summary>Output size in pixels; null uses the UNet's sample_size times the VAE factor.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }
    /// <summary>Unscaled initial noise [B, C, h, w]; when null it is drawn from the PyTorch-compatible generator.</summary>
    public Tensor? InitLatents { get; init; }
}

public sealed record StageTiming(string Stage, double Seconds);

public sealed class GenerationResult
{
    public required byte[][] ImagesHwc { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    /// <summary>Final latents [B, C, h, w] (before division by the scaling factor); persistent, owned by the caller.</summary>
    public required Tensor FinalLatents { get; init; }
    public required IReadOnlyList<StageTiming> Timings { get; init; }
}

public sealed class RectifiedFlowPipeline(SdComponents model)
{
    public SdComponents Model { get; } = model;

    public int DefaultHeight => Model.Unet.Config.SampleSize * Model.Vae.Config.ScaleFactor;
    public int DefaultWidth => DefaultHeight;

    /// <summary>Called after each UNet step with (step index, steps).</summary>
    public Action<int, int>? Progress { get; set; }

    /// <summary>Receives intermediate tensors (prompt_embeds, step{i}.v_pred, step{i}.latents, image_raw) for tests.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    public GenerationResult Generate(GenerationRequest req) => Generate(req, CancellationToken.None);

    /// <summary>
    /// Like Generate(req), but stops with OperationCanceledException between stages and UNet steps once the token is
    /// cancelled, so a server can drop the work of a client that went away.
    /// </summary>
    public GenerationResult Generate(GenerationRequest req, CancellationToken cancellation)
    {
        Validate(req);
        cancellation.ThrowIfCancellationRequested();
        int b = req.Prompts.Count;
        int width = req.Width ?? DefaultWidth, height = req.Height ?? DefaultHeight;
        int f = Model.Vae.Config.ScaleFactor, lc = Model.Unet.Config.InChannels;
        bool cfg = req.Guidance > 1f;
        var timings = new List<StageTiming>();
        var sw = Stopwatch.StartNew();
        void Mark(string stage)
        {
            timings.Add(new StageTiming(stage, sw.Elapsed.TotalSeconds));
            cancellation.ThrowIfCancellationRequested();
            sw.Restart();
        }

        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        // 1. tokenize (pad/truncate to 77); negatives only when guidance is on
        var ids = Tokenize(req.Prompts);
        int[]? negIds = cfg ? Tokenize(req.NegativePrompts ?? Enumerable.Repeat("", b).ToList()) : null;
        Mark("tokenize");

        // 2. text encoder; with CFG the batch is cat([negative, positive])
        var embeds = Model.TextEncoder.Forward(ids, b).LastHiddenState;
        Hook?.Invoke("prompt_embeds", embeds);
        var context = embeds;
        if (cfg)
        {
            var neg = Model.TextEncoder.Forward(negIds!, b).LastHiddenState;
            Hook?.Invoke("negative_prompt_embeds", neg);
            context = Ops.Concat(new[] { neg, embeds }, 0);
        }
        Mark("text_encoder");

        // 3. initial noise (init_noise_sigma = 1 for rectified flow)
        var latents = req.InitLatents?.Clone() ?? new TorchGenerator(req.Seed).Randn(b, lc, height / f, width / f);
        if (!ShapeUtil.SameShape(latents.Shape, new[] { b, lc, height / f, width / f }))
            throw new ArgumentException($"initial latents {latents.Describe()} do not match [{b}, {lc}, {height / f}, {width / f}] for {b} prompt(s) at {width}x{height}");

        // 4. Euler steps: t_i = (1 - i/N) * 1000, dt = 1/N, x += dt * v
        int n = req.Steps;
        float dt = (float)(1.0 / n);
        for (int i = 0; i < n; i++)
        {
            using var stepScope = TensorScope.Begin();
            float t = (float)((1.0 - (double)i / n) * 1000.0);
            var input = cfg ? Ops.Concat(new[] { latents, latents }, 0) : latents;
            var tv = Enumerable.Repeat(t, input.Dim(0)).ToArray();
            var v = Model.Unet.Forward(input, tv, context);
            if (cfg)
            {
                var vNeg = Ops.Narrow(v, 0, 0, b);
                var vText = Ops.Narrow(v, 0, b, b);
                v = Ops.Add(vNeg, Ops.MulScalar(Ops.Sub(vText, vNeg), req.Guidance));
            }
            Hook?.Invoke($"step{i}.v_pred", v);
            var next = Ops.Add(latents, Ops.MulScalar(v, dt));
            latents = stepScope.Keep(next);
            Hook?.Invoke($"step{i}.latents", latents);
            Progress?.Invoke(i, n);
            Mark($"unet_step{i}");
        }

        // 5. decode latents / scaling_factor
        var raw = Model.Vae.Decode(Ops.Div(latents, Tensor.Scalar(Model.Vae.Config.ScalingFactor)));
        Hook?.Invoke("image_raw", raw);
        Mark("vae_decode");

        // 6. postprocess: clamp(x/2 + 0.5, 0, 1) -> uint8 HWC, round half to even
        var images = ImageOps.ToUint8Hwc(raw);
        Mark("postprocess");

        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = latents.ClonePersistent(), Timings = timings };
    }

    private int[] Tokenize(IReadOnlyList<string> prompts)
    {
        var all = new List<int>();
        foreach (var p in prompts) all.AddRange(Model.Tokenizer.Tokenize(p, Model.TextEncoder.Config.MaxPositionEmbeddings).Ids);
        return all.ToArray();
    }

    /// <summary>Truncation warnings for the prompts (empty when every prompt fits in 77 tokens).</summary>
    public IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts)
    {
        foreach (var p in prompts)
        {
            var t = Model.Tokenizer.Tokenize(p, Model.TextEncoder.Config.MaxPositionEmbeddings);
            if (t.Truncated) yield return $"prompt is longer than {Model.TextEncoder.Config.MaxPositionEmbeddings} tokens; these words were cut: \"{t.CutText}\"";
        }
    }

    private void Validate(GenerationRequest r)
    {
        if (r.Prompts.Count == 0) throw new ArgumentException("no prompt given");
        if (r.Steps < 1 || r.Steps > 1000) throw new ArgumentException($"steps must be between 1 and 1000, got {r.Steps}");
        if (float.IsNaN(r.Guidance) || r.Guidance < 0 || r.Guidance > 100) throw new ArgumentException($"guidance must be between 0 and 100, got {r.Guidance}");
        if (r.NegativePrompts != null && r.NegativePrompts.Count != r.Prompts.Count)
            throw new ArgumentException($"{r.NegativePrompts.Count} negative prompts for {r.Prompts.Count} prompts");
        int f = Model.Vae.Config.ScaleFactor;
        foreach (var (name, v) in new[] { ("width", r.Width), ("height", r.Height) })
            if (v is int x && (x <= 0 || x % 8 != 0 || x % f != 0 || x > 4096))
                throw new ArgumentException($"{name} {x} is not usable: it must be a positive multiple of 8 (and of the VAE factor {f}), at most 4096");
    }
}
