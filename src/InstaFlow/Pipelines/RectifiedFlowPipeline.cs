// InstaFlow's text-to-image recipe (code/pipeline_rf.py): text embeddings, the rectified-flow ODE integrated from
// noise with the Flow toolkit's one field (FlowModel: InstaFlow time convention, guidance on above 1) and Euler
// sampler, then decode to uint8 images. With a control image it is code/pipeline_rf_ctrl.py: the model's ControlNet
// adds residuals to every UNet call. Inversion and straightness use the same field.
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Unet;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

/// <summary>A batch of prompts run through one ODE solve (one network call per step for the whole batch).</summary>
public sealed record GenerationRequest
{
    public required IReadOnlyList<string> Prompts { get; init; }
    /// <summary>One per prompt, or null for the pipeline default ("" when guidance &gt; 1).</summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }
    public int Steps { get; init; } = 1;
    public float Guidance { get; init; }
    /// <summary>Prompt i starts from the seed policy's noise for image i (<see cref="SeedPolicy"/>).</summary>
    public ulong Seed { get; init; }
    /// <summary>Output size in pixels; null uses the UNet's sample_size times the VAE factor.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }
    /// <summary>Unscaled initial noise [B, C, h, w]; when null it is drawn by the seed policy.</summary>
    public Tensor? InitLatents { get; init; }
    /// <summary>A control image for the model's ControlNet; the output takes its size.</summary>
    public ControlImage? Control { get; init; }
    /// <summary>Image-to-image: an RGB uint8 HWC image whose encoding the flow starts from (PartialFlow); the output takes its size.</summary>
    public InitImage? InitImage { get; init; }
    /// <summary>With InitImage: the integration runs over [1 - Strength, 1] from Strength * noise + (1 - Strength) * encode(image).</summary>
    public float Strength { get; init; } = 1f;
}

/// <summary>An RGB uint8 HWC image to start image-to-image generation from.</summary>
public sealed record InitImage(byte[] Hwc, int Width, int Height);

/// <summary>An RGB uint8 HWC control image and the strength of the ControlNet's residuals.</summary>
public sealed record ControlImage(byte[] Hwc, int Width, int Height, float Scale = 1f);

public sealed record StageTiming(string Stage, double Seconds);

/// <summary>Where a generation is: image (0-based) of images, step (0-based, just finished) of steps.</summary>
public readonly record struct GenerationProgress(int Image, int Images, int Step, int Steps);

public sealed class GenerationResult
{
    public required byte[][] ImagesHwc { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    /// <summary>Final latents [B, C, h, w] (before division by the scaling factor); persistent, owned by the caller.</summary>
    public required Tensor FinalLatents { get; init; }
    public required IReadOnlyList<StageTiming> Timings { get; init; }
    /// <summary>Per image: the parameters that remake it, for PNG text chunks and API answers.</summary>
    public IReadOnlyList<GenerationMetadata> Metadata { get; init; } = [];
}

public sealed class RectifiedFlowPipeline(ITextToImageModel model)
{
    public ITextToImageModel Model { get; } = model;

    public int DefaultHeight => ImageSize.Default(Model);
    public int DefaultWidth => DefaultHeight;

    /// <summary>Called after each Euler step.</summary>
    public Action<GenerationProgress>? Progress { get; set; }

    /// <summary>Receives intermediate tensors (prompt_embeds, step{i}.unet_out, step{i}.v_pred, step{i}.latents, image_raw) for tests.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    /// <summary>
    /// For one-shot use (the CLI): free the text encoder after the prompts and the UNet after the last step, so each
    /// stage's activations only share memory with the weights still needed. The pipeline cannot generate again.
    /// </summary>
    public bool ReleaseWeightsAsUsed { get; set; }

    /// <summary>
    /// When set, idle pooled buffers are capped at this many bytes while the pipeline runs (lower peak memory, slightly
    /// slower steps); the previous cap is restored afterwards.
    /// </summary>
    public long? MaxPooledBytes { get; set; }

    /// <summary>
    /// The InstaFlow ODE's field for encoded prompts: the denoiser at network time 1000 (1 - t), classifier-free guided
    /// against the negative encodings when Guidance.IsOn(guidance). Generation, inversion and straightness all use it.
    /// </summary>
    public static VelocityFn Field(IDenoiser denoiser, Conditioning cond, float guidance) =>
        new FlowModel(new DenoiserVelocity(denoiser), FlowConvention.InstaFlow).Field(cond.Context, guidance, cond.Negative);

    /// <summary>The prompts' encodings (and the negatives' when guidance is on), without gradients; the caller's scope owns them.</summary>
    public Conditioning Encode(IReadOnlyList<string> prompts, IReadOnlyList<string>? negatives, float guidance)
    {
        using var _ = GradMode.NoGrad();
        return PipelineSteps.Encode(Model, prompts, negatives, Guidance.IsOn(guidance), null, _ => { });
    }

    public GenerationResult Generate(GenerationRequest req) => Generate(req, CancellationToken.None);

    /// <summary>
    /// Runs the batch through one ODE solve. Stops with OperationCanceledException between stages and steps once the
    /// token is cancelled, so a server can drop the work of a client that went away.
    /// </summary>
    public GenerationResult Generate(GenerationRequest req, CancellationToken cancellation)
    {
        (req, var (b, width, height, guided, timer)) = Start(req, cancellation);
        using var coop = Cooperative.Use(cancellation);
        using var pool = PoolCap();
        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        // 1-2. tokenize, text encoder (and the negatives when guided)
        var cond = EncodeOnce(req, guided, timer);

        // 3. initial noise (init_noise_sigma = 1 for rectified flow)
        var noise = PipelineSteps.InitialNoise(Model, req, width, height);

        // 4. Euler steps of the InstaFlow ODE
        var latents = Integrate(cond, noise, req, 0, 1, timer, EncodeInitImage(req, b, timer));

        // 5-6. decode latents / scaling_factor, postprocess to uint8 HWC (round half to even)
        if (ReleaseWeightsAsUsed) Model.ReleaseDenoiser();
        byte[][] images;
        using (LastUse(true)) images = PipelineSteps.Decode(Model, latents, Hook, timer.Mark);
        var meta = Enumerable.Range(0, b).Select(i => Metadata(req, i, width, height)).ToArray();
        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = latents.ClonePersistent(), Timings = timer.Timings, Metadata = meta };
    }

    /// <summary>
    /// `count` images of one prompt, each solved alone from its own seed (SeedPolicy: seed + i) or its row of
    /// InitLatents: how the CLI and the server generate, so the same parameters give the same pixels through both, and
    /// image i equals a one-image run with seed + i. The prompt is encoded once. Timings are summed over the images.
    /// </summary>
    public GenerationResult GenerateImages(GenerationRequest req, int count, CancellationToken cancellation = default)
    {
        if (req.Prompts.Count != 1) throw new ArgumentException($"GenerateImages takes one prompt (repeated {count} times), got {req.Prompts.Count}");
        if (count < 1) throw new InvalidInputException($"the image count must be at least 1, got {count}");
        if (req.InitLatents != null && req.InitLatents.Dim(0) != count)
            throw new InvalidInputException($"initial latents {req.InitLatents.Describe()} have {req.InitLatents.Dim(0)} rows for {count} image(s)");
        (req, var (_, width, height, guided, timer)) = Start(req, cancellation);
        using var coop = Cooperative.Use(cancellation);
        using var pool = PoolCap();
        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        var cond = EncodeOnce(req, guided, timer);
        var init = EncodeInitImage(req, 1, timer);

        var images = new byte[count][];
        var finals = new Tensor[count];
        var meta = new GenerationMetadata[count];
        for (int i = 0; i < count; i++)
        {
            using var imageScope = TensorScope.Begin();
            var one = req with { Seed = SeedPolicy.ImageSeed(req.Seed, i), InitLatents = req.InitLatents == null ? null : Ops.Narrow(req.InitLatents, 0, i, 1) };
            var noise = PipelineSteps.InitialNoise(Model, one, width, height);
            var latents = Integrate(cond, noise, one, i, count, timer, init);
            if (ReleaseWeightsAsUsed && i == count - 1) Model.ReleaseDenoiser();
            using (LastUse(i == count - 1)) images[i] = PipelineSteps.Decode(Model, latents, Hook, timer.Mark)[0];
            finals[i] = imageScope.Keep(latents);
            meta[i] = Metadata(req, i, width, height);
        }
        var all = Ops.Concat(finals, 0).ClonePersistent();
        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = all, Timings = Summed(timer.Timings), Metadata = meta };
    }

    /// <summary>Truncation warnings for the prompts (empty when every prompt fits in the encoder's tokens).</summary>
    public IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts) => Model.PromptEncoder.TruncationWarnings(prompts);

    /// <summary>Applies MaxPooledBytes for one run; disposing restores the previous cap.</summary>
    private PoolCapScope? PoolCap() => MaxPooledBytes is long cap ? new PoolCapScope(cap) : null;

    private sealed class PoolCapScope : IDisposable
    {
        private readonly long _previous = BufferPool.MaxPooledBytes;
        public PoolCapScope(long cap) => BufferPool.MaxPooledBytes = cap;
        public void Dispose() => BufferPool.MaxPooledBytes = _previous;
    }

    /// <summary>Checks that the run can start and resolves its size (a control image's), guidance and timer.</summary>
    private (GenerationRequest, PipelineSteps.Run) Start(GenerationRequest req, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        if (Model.DenoisersReleased)
            throw new InvalidOperationException($"{Model.Description}: the text encoder and UNet were released after the last generation (ReleaseWeightsAsUsed); load the model again");
        req = WithControlSize(req);
        if (req.InitImage is { } im)
        {
            PartialFlow.Check(req.Strength);
            if ((req.Width ?? im.Width) != im.Width || (req.Height ?? im.Height) != im.Height)
                throw new InvalidInputException($"the init image is {im.Width}x{im.Height} but the output is {req.Width}x{req.Height}; image-to-image keeps the image's size");
            if (im.Hwc.Length != im.Width * im.Height * 3) throw new InvalidInputException($"the init image has {im.Hwc.Length} bytes, not {im.Width}x{im.Height} RGB");
            req = req with { Width = im.Width, Height = im.Height };
        }
        return (req, PipelineSteps.Prepare(Model, req, cancellation));
    }

    /// <summary>
    /// In a one-shot run, the network's final forward pass: each weight's file pages are dropped once packed (see
    /// <see cref="WeightLastUse"/>), so a one-step UNet holds one layer of its file at a time.
    /// </summary>
    private IDisposable? LastUse(bool last) => ReleaseWeightsAsUsed && last ? WeightLastUse.Begin() : null;

    /// <summary>The prompts' encodings; a one-shot run frees the text encoder right after.</summary>
    private Conditioning EncodeOnce(GenerationRequest req, bool guided, PipelineSteps.Timer timer)
    {
        var cond = PipelineSteps.Encode(Model, req.Prompts, req.NegativePrompts, guided, Hook, timer.Mark);
        if (ReleaseWeightsAsUsed) Model.ReleaseTextEncoder();
        return cond;
    }

    /// <summary>A control image fixes the output size; the size must agree with it.</summary>
    private GenerationRequest WithControlSize(GenerationRequest req)
    {
        if (req.Control is not { } ctl) return req;
        if (Model.ControlNet == null) throw new InvalidInputException("the request has a control image but the model has no ControlNet (add one with ModelAdditions.ControlNetDir / --controlnet)");
        if ((req.Width ?? ctl.Width) != ctl.Width || (req.Height ?? ctl.Height) != ctl.Height)
            throw new InvalidInputException($"the control image is {ctl.Width}x{ctl.Height} but the output is {req.Width}x{req.Height}; resize the control image to the output size");
        if (ctl.Hwc.Length != ctl.Width * ctl.Height * 3) throw new InvalidInputException($"the control image has {ctl.Hwc.Length} bytes, not {ctl.Width}x{ctl.Height} RGB");
        if (!float.IsFinite(ctl.Scale)) throw new InvalidInputException($"the ControlNet scale must be a finite number, got {ctl.Scale}");
        return req with { Width = ctl.Width, Height = ctl.Height };
    }

    /// <summary>The init image's latents (VAE posterior mean times scaling_factor), one row per image of the run; null without one.</summary>
    private Tensor? EncodeInitImage(GenerationRequest req, int rows, PipelineSteps.Timer timer)
    {
        if (req.InitImage is not { } im) return null;
        var z = Model.LatentEncoder.EncodeLatents(ImageTensors.ToTensorSigned(im.Hwc, 1, im.Width, im.Height));
        Hook?.Invoke("init_image_latents", z);
        timer.Mark("vae_encode");
        return rows == 1 ? z : Ops.Concat(Enumerable.Repeat(z, rows).ToArray(), 0);
    }

    /// <summary>
    /// Euler steps of the InstaFlow ODE from noise (or, image-to-image, from the partial-flow start over [1 - strength, 1]),
    /// with the step hooks, progress and cancellation.
    /// </summary>
    private Tensor Integrate(Conditioning cond, Tensor noise, GenerationRequest req, int image, int images, PipelineSteps.Timer timer, Tensor? init = null)
    {
        int step = 0;
        var hooked = new StepHooks(DenoiserFor(req), Hook, () => step);
        var field = Field(hooked, cond, req.Guidance);
        VelocityFn v = Hook == null ? field : (x, t) =>
        {
            var vt = field(x, t);
            Hook($"step{step}.v_pred", vt);
            return vt;
        };
        void OnStep(int i, double _, Tensor x)
        {
            Hook?.Invoke($"step{i}.latents", x);
            Progress?.Invoke(new GenerationProgress(image, images, i, req.Steps));
            timer.Mark($"unet_step{i}");
            step = i + 1;
        }
        // One step of the last image reads every UNet weight once, for the last time.
        using var lastUse = LastUse(req.Steps == 1 && image == images - 1);
        if (init != null) return PartialFlow.Run(new EulerSampler(req.Steps), v, noise, init, req.Strength, OnStep);
        return new EulerSampler(req.Steps).Sample(v, noise, onStep: OnStep).X;
    }

    /// <summary>The model's denoiser, with the ControlNet and the request's control image when it has one.</summary>
    private IDenoiser DenoiserFor(GenerationRequest req)
    {
        if (req.Control is not { } c) return Model.Denoiser;
        if (Model.Denoiser is not UNet2DConditionModel unet)
            throw new NotSupportedException($"{Model.Description}: ControlNet residuals need this library's UNet, not {Model.Denoiser.GetType().Name}");
        var image = ImageTensors.ToTensorUnit(c.Hwc, 1, c.Width, c.Height);
        return new ControlledDenoiser(unet, Model.ControlNet!, image, c.Scale);
    }

    private GenerationMetadata Metadata(GenerationRequest req, int i, int width, int height) =>
        new(req.Prompts[i % req.Prompts.Count], req.NegativePrompts?[i % req.Prompts.Count], req.Steps, req.Guidance,
            SeedPolicy.ImageSeed(req.Seed, i), width, height, Model.Description) { ControlScale = req.Control?.Scale };

    /// <summary>Stage times summed over the images of a run, in first-seen order.</summary>
    private static List<StageTiming> Summed(IEnumerable<StageTiming> timings) =>
        timings.GroupBy(t => t.Stage).Select(g => new StageTiming(g.Key, g.Sum(t => t.Seconds))).ToList();

    /// <summary>Passes denoiser outputs and ControlNet residuals to the hook under the current step's name.</summary>
    private sealed class StepHooks(IDenoiser inner, Action<string, Tensor>? hook, Func<int> step) : IDenoiser
    {
        public int LatentChannels => inner.LatentChannels;
        public int SampleSize => inner.SampleSize;

        public Tensor Forward(Tensor sample, float[] timesteps, Tensor context)
        {
            if (hook == null) return inner.Forward(sample, timesteps, context);
            if (inner is ControlledDenoiser c) c.Hook = (name, t) => hook($"step{step()}.{name}", t);
            var y = inner.Forward(sample, timesteps, context);
            hook($"step{step()}.unet_out", y);
            return y;
        }
    }
}
