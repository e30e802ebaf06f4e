// Latent interpolation between two prompts (InstaFlow's README videos): frame k of N uses the spherical interpolation
// of two seeds' noises and the linear interpolation of the two prompts' text embeddings, each solved like generate.
using InstaFlow.Flow;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

public sealed record InterpolationRequest
{
    public required string PromptA { get; init; }
    public required string PromptB { get; init; }
    public string? NegativePrompt { get; init; }
    /// <summary>Frames including both ends (at least 2).</summary>
    public int Frames { get; init; } = 8;
    public int Steps { get; init; } = 1;
    public float Guidance { get; init; }
    /// <summary>Prompt A's noise is SeedPolicy image 0 of this seed, prompt B's image 1 (seed + 1).</summary>
    public ulong Seed { get; init; }
    public int? Width { get; init; }
    public int? Height { get; init; }
}

public static class LatentInterpolation
{
    /// <summary>
    /// slerp(a, b, alpha) over the flattened tensors: sin((1-alpha) theta)/sin theta * a + sin(alpha theta)/sin theta * b,
    /// which keeps Gaussian noise at its typical norm where a straight line would shrink it; nearly parallel inputs
    /// fall back to the linear blend.
    /// </summary>
    public static Tensor Slerp(Tensor a, Tensor b, double alpha)
    {
        if (!ShapeUtil.SameShape(a.Shape, b.Shape)) throw new ArgumentException($"slerp: {a.Describe()} and {b.Describe()} differ in shape");
        var (x, y) = (a.ToArray(), b.ToArray());
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < x.Length; i++) { dot += (double)x[i] * y[i]; na += (double)x[i] * x[i]; nb += (double)y[i] * y[i]; }
        double cos = dot / Math.Sqrt(na * nb);
        double wa = 1 - alpha, wb = alpha;
        if (Math.Abs(cos) < 0.9995)
        {
            double theta = Math.Acos(cos), s = Math.Sin(theta);
            (wa, wb) = (Math.Sin((1 - alpha) * theta) / s, Math.Sin(alpha * theta) / s);
        }
        var r = new float[x.Length];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(wa * x[i] + wb * y[i]);
        return Tensor.FromArray(r, a.ShapeArray());
    }

    /// <summary>(1 - alpha) a + alpha b.</summary>
    public static Tensor Lerp(Tensor a, Tensor b, double alpha) => Ops.Add(Ops.MulScalar(a, (float)(1 - alpha)), Ops.MulScalar(b, (float)alpha));

    /// <summary>Frame k (alpha = k / (Frames - 1)) for every k; frame 0 equals generate(PromptA, Seed), the last generate(PromptB, Seed + 1).</summary>
    public static GenerationResult Run(ITextToImageModel model, InterpolationRequest req, Action<GenerationProgress>? progress = null, CancellationToken cancellation = default)
    {
        if (req.Frames < 2 || req.Frames > 1000) throw new InvalidInputException($"frames must be between 2 and 1000, got {req.Frames}");
        var probe = new GenerationRequest { Prompts = [req.PromptA, req.PromptB], NegativePrompts = req.NegativePrompt == null ? null : [req.NegativePrompt, req.NegativePrompt],
            Steps = req.Steps, Guidance = req.Guidance, Seed = req.Seed, Width = req.Width, Height = req.Height };
        var (_, width, height, guided, timer) = PipelineSteps.Prepare(model, probe, cancellation);
        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        // 1. both prompts (and negatives) once; 2. both seeds' noises
        var cond = PipelineSteps.Encode(model, probe.Prompts, probe.NegativePrompts, guided, null, timer.Mark);
        var noise = PipelineSteps.InitialNoise(model, probe, width, height);
        Tensor Row(Tensor t, int i) => Ops.Narrow(t, 0, i, 1);

        var images = new byte[req.Frames][];
        var finals = new Tensor[req.Frames];
        var meta = new GenerationMetadata[req.Frames];
        for (int k = 0; k < req.Frames; k++)
        {
            using var frameScope = TensorScope.Begin();
            double alpha = (double)k / (req.Frames - 1);
            // 3. slerp of the noise, lerp of the text embeddings; the negative side is the same at both ends
            var x0 = Slerp(Row(noise, 0), Row(noise, 1), alpha);
            var c = new Conditioning(Lerp(Row(cond.Context, 0), Row(cond.Context, 1), alpha), cond.Negative == null ? null : Row(cond.Negative, 0));
            // 4. the InstaFlow field and Euler steps, 5. decode
            var v = RectifiedFlowPipeline.Field(model.Denoiser, c, req.Guidance);
            int frame = k;
            var x1 = new EulerSampler(req.Steps).Sample(v, x0, onStep: (i, _, _) =>
            {
                progress?.Invoke(new GenerationProgress(frame, req.Frames, i, req.Steps));
                timer.Mark($"unet_step{i}");
            }).X;
            images[k] = PipelineSteps.Decode(model, x1, null, timer.Mark)[0];
            finals[k] = frameScope.Keep(x1);
            meta[k] = new GenerationMetadata(alpha < 0.5 ? req.PromptA : req.PromptB, req.NegativePrompt, req.Steps, req.Guidance, req.Seed, width, height,
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{model.Description}, interpolation {alpha:F3} of \"{req.PromptA}\" -> \"{req.PromptB}\""));
        }
        var timings = timer.Timings.GroupBy(t => t.Stage).Select(g => new StageTiming(g.Key, g.Sum(t => t.Seconds))).ToList();
        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = Ops.Concat(finals, 0).ClonePersistent(), Timings = timings, Metadata = meta };
    }
}
