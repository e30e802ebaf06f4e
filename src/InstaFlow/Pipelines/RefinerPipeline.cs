// SDXL-Refiner image-to-image as diffusers 0.21.4's StableDiffusionXLImg2ImgPipeline (what InstaFlow's demo runs on
// its one-step images): encode the image, let strength pick the starting Euler step, add the scheduler's noise, then
// the guided Euler loop with aesthetic-score time ids, and decode.
using InstaFlow.Flow;
using InstaFlow.Flow.Schedulers;
using InstaFlow.IO;
using InstaFlow.Models.Unet;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Pipelines;

/// <summary>One image to refine. Defaults are the demo's (local_gradio.py): strength 0.3, 50 steps, guidance 5.</summary>
public sealed record RefineRequest
{
    /// <summary>RGB uint8, height x width x 3; both sides a multiple of the VAE factor (8).</summary>
    public required byte[] ImageHwc { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required string Prompt { get; init; }
    /// <summary>null: "" encoded (the refiner's force_zeros_for_empty_prompt is false), used only when guidance &gt; 1.</summary>
    public string? NegativePrompt { get; init; }
    /// <summary>The share of the schedule that is run: its last int(steps * strength) steps, as diffusers.</summary>
    public float Strength { get; init; } = 0.3f;
    public int Steps { get; init; } = 50;
    public float Guidance { get; init; } = 5f;
    public float AestheticScore { get; init; } = 6f;
    public float NegativeAestheticScore { get; init; } = 2.5f;
    /// <summary>Seeds torch.Generator("cpu"): its first randn is the VAE posterior sample, the second the added noise.</summary>
    public ulong Seed { get; init; }
    /// <summary>Both or neither: the two draws [1, C, h, w] given directly (they replace the seed).</summary>
    public Tensor? EncodeNoise { get; init; }
    public Tensor? AddNoise { get; init; }
}

public sealed class RefinerPipeline(RefinerComponents model)
{
    public RefinerComponents Model { get; } = model;

    /// <summary>Intermediates under the golden files' names: prompt_embeds, pooled_prompt_embeds, negative_*, image_tensor,
    /// moments, init_latents, noisy_latents, add_time_ids, add_neg_time_ids, step{i}.model_input, step{i}.noise_pred,
    /// step{i}.latents, image_raw.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    /// <summary>Called after each denoising step (Step of Steps counts only the steps strength leaves).</summary>
    public Action<GenerationProgress>? Progress { get; set; }

    /// <summary>
    /// One-shot (the CLI): text_encoder_2 is freed after the prompts and the UNet after the last step, and the decode is
    /// the VAE weights' last use (see <see cref="WeightLastUse"/>); the components cannot refine again. A server leaves it off.
    /// </summary>
    public bool ReleaseWeightsAsUsed { get; init; }

    /// <summary>diffusers' get_timesteps: int(steps * strength) in double precision, truncated; the run starts at steps - that.</summary>
    public static int StartStep(int steps, float strength)
    {
        int init = Math.Min((int)(steps * (double)strength), steps);
        return Math.Max(steps - init, 0);
    }

    public GenerationResult Refine(RefineRequest req, CancellationToken cancellation = default)
    {
        Validate(req);
        if (Model.WeightsReleased)
            throw new InvalidOperationException($"{Model.Name}: text_encoder_2 and the UNet were released after the last refinement (ReleaseWeightsAsUsed); load the refiner again");
        var timer = new PipelineSteps.Timer(cancellation);
        int f = Model.Vae.Config.ScaleFactor, lc = Model.Vae.Config.LatentChannels;
        int[] latentShape = [1, lc, req.Height / f, req.Width / f];
        bool guided = Guidance.IsOn(req.Guidance);
        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        // 1. prompts: penultimate hidden states and pooled projected embeddings (negatives only when guided)
        var (embeds, pooled) = EncodePrompt(req.Prompt);
        Hook?.Invoke("prompt_embeds", embeds);
        Hook?.Invoke("pooled_prompt_embeds", pooled);
        Tensor context = embeds, textEmbeds = pooled;
        if (guided)
        {
            var (negEmbeds, negPooled) = Model.ForceZerosForEmptyPrompt && req.NegativePrompt == null
                ? (Tensor.Zeros(embeds.ShapeArray()), Tensor.Zeros(pooled.ShapeArray()))
                : EncodePrompt(req.NegativePrompt ?? "");
            Hook?.Invoke("negative_prompt_embeds", negEmbeds);
            Hook?.Invoke("negative_pooled_prompt_embeds", negPooled);
            context = Ops.Concat([negEmbeds, embeds], 0);
            textEmbeds = Ops.Concat([negPooled, pooled], 0);
        }
        timer.Mark("text_encoder");
        if (ReleaseWeightsAsUsed) Model.Release(Model.TextEncoder);

        // 2. image u8 -> [-1, 1], [1, 3, H, W]
        var image = ImageTensors.ToTensorSigned(req.ImageHwc, 1, req.Width, req.Height);
        Hook?.Invoke("image_tensor", image);

        // 3. timesteps: the full schedule, then strength picks where to start
        var scheduler = new EulerDiscreteScheduler(Model.SchedulerConfig);
        scheduler.SetTimesteps(req.Steps);
        int start = StartStep(req.Steps, req.Strength);

        // 4. the two generator draws, in the pipeline's order
        var (encodeNoise, addNoise) = Noises(req, latentShape);

        // 5. encode: a posterior sample mean + std * noise, times scaling_factor
        var moments = Model.Vae.QuantConv.Forward(Model.Vae.Encoder.Forward(image));
        Hook?.Invoke("moments", moments);
        var mean = Ops.Narrow(moments, 1, 0, lc);
        var logvar = Ops.Clamp(Ops.Narrow(moments, 1, lc, lc), -30f, 20f);
        var std = Ops.Exp(Ops.MulScalar(logvar, 0.5f));
        var initLatents = Ops.MulScalar(Ops.Add(mean, Ops.Mul(std, encodeNoise)), Model.Vae.Config.ScalingFactor);
        Hook?.Invoke("init_latents", initLatents);
        timer.Mark("vae_encode");
        // The encoder's 512x512 activations do not fit the UNet's sizes: give them back instead of keeping them pooled.
        BufferPool.Trim();

        // 6. the scheduler's add_noise at the first timestep run: x + noise * sigma[start]
        var latents = Ops.Add(initLatents, Ops.MulScalar(addNoise, scheduler.Sigmas[start]));
        Hook?.Invoke("noisy_latents", latents);

        // 7. micro-conditioning: (H, W) original size, (0, 0) crop, then the aesthetic score (or the target size)
        var timeIds = TimeIds(req, req.AestheticScore);
        Hook?.Invoke("add_time_ids", timeIds);
        if (guided)
        {
            var negIds = TimeIds(req, req.NegativeAestheticScore);
            Hook?.Invoke("add_neg_time_ids", negIds);
            timeIds = Ops.Concat([negIds, timeIds], 0);
        }
        var added = new AddedConditions(textEmbeds, timeIds);

        // 8. guided Euler steps over timesteps[start..]
        int n = req.Steps - start;
        for (int i = 0; i < n; i++)
        {
            using var stepScope = TensorScope.Begin();
            int k = start + i;
            var input = scheduler.ScaleModelInput(guided ? Ops.Concat([latents, latents], 0) : latents, k);
            Hook?.Invoke($"step{i}.model_input", input);
            var eps = Model.Unet.Forward(input, Enumerable.Repeat(scheduler.Timesteps[k], input.Dim(0)).ToArray(), context, added: added);
            if (guided) eps = Guidance.Combine(eps, 1, req.Guidance);
            Hook?.Invoke($"step{i}.noise_pred", eps);
            latents = stepScope.Keep(scheduler.Step(eps, k, latents));
            Hook?.Invoke($"step{i}.latents", latents);
            Progress?.Invoke(new GenerationProgress(0, 1, i, n));
            timer.Mark($"unet_step{i}");
        }

        // 9. decode latents / scaling_factor (float32 throughout, which is what force_upcast asks for)
        if (ReleaseWeightsAsUsed) Model.Release(Model.Unet);
        BufferPool.Trim();
        Tensor raw;
        using (ReleaseWeightsAsUsed ? WeightLastUse.Begin() : null)
            raw = Model.Vae.Decode(Ops.Div(latents, Tensor.Scalar(Model.Vae.Config.ScalingFactor)));
        Hook?.Invoke("image_raw", raw);
        timer.Mark("vae_decode");
        var images = ImageTensors.ToUint8Hwc(raw);
        timer.Mark("postprocess");
        var meta = new GenerationMetadata(req.Prompt, req.NegativePrompt, req.Steps, req.Guidance, req.Seed, req.Width, req.Height, Model.Name,
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"SDXL img2img Euler, strength {req.Strength}"));
        return new GenerationResult { ImagesHwc = images, Width = req.Width, Height = req.Height, FinalLatents = latents.ClonePersistent(), Timings = timer.Timings, Metadata = [meta] };
    }

    /// <summary>tokenizer_2 ids (padded with its pad token), text_encoder_2 -> (hidden_states[-2] [1, T, D], text_embeds [1, P]).</summary>
    public (Tensor Embeds, Tensor Pooled) EncodePrompt(string prompt)
    {
        var ids = Model.Tokenizer.Tokenize(prompt, Model.TextEncoder.Config.MaxPositionEmbeddings).Ids;
        var o = Model.TextEncoder.Forward(ids, 1);
        return (o.Penultimate, o.TextEmbeds);
    }

    private Tensor TimeIds(RefineRequest req, float score)
    {
        float[] ids = Model.RequiresAestheticsScore
            ? [req.Height, req.Width, 0, 0, score]
            : [req.Height, req.Width, 0, 0, req.Height, req.Width];
        return Tensor.FromArray(ids, 1, ids.Length);
    }

    private static (Tensor Encode, Tensor Add) Noises(RefineRequest req, int[] shape)
    {
        if (req.EncodeNoise == null && req.AddNoise == null)
        {
            var g = new TorchGenerator(req.Seed);
            var first = g.Randn(shape);
            return (first, g.Randn(shape));
        }
        if (req.EncodeNoise == null || req.AddNoise == null)
            throw new InvalidInputException("init noise: give both encode_noise and add_noise (the VAE sample's and the scheduler's), or neither to draw them from the seed");
        foreach (var (name, t) in new[] { ("encode_noise", req.EncodeNoise), ("add_noise", req.AddNoise) })
            if (!ShapeUtil.SameShape(t.Shape, shape))
                throw new InvalidInputException($"init noise: {name} is {t.Describe()} but a {req.Width}x{req.Height} image needs [{string.Join(", ", shape)}]");
        return (req.EncodeNoise, req.AddNoise);
    }

    private void Validate(RefineRequest r)
    {
        int f = Model.Vae.Config.ScaleFactor;
        if (r.Width <= 0 || r.Height <= 0 || r.Width % f != 0 || r.Height % f != 0)
            throw new InvalidInputException($"the image to refine is {r.Width}x{r.Height}; both sides must be positive multiples of {f} (crop or resize it, e.g. to {Math.Max(f, r.Width / f * f)}x{Math.Max(f, r.Height / f * f)})");
        if (r.ImageHwc.Length != r.Width * r.Height * 3) throw new InvalidInputException($"the image to refine has {r.ImageHwc.Length} bytes, not {r.Width}x{r.Height} RGB");
        if (r.Steps < 1 || r.Steps > 1000) throw new InvalidInputException($"steps must be between 1 and 1000, got {r.Steps}");
        if (!(r.Strength > 0 && r.Strength <= 1)) throw new InvalidInputException($"strength must be in (0, 1], got {r.Strength}");
        if (StartStep(r.Steps, r.Strength) >= r.Steps)
            throw new InvalidInputException($"strength {r.Strength} of {r.Steps} steps leaves no step to run (int(steps * strength) = 0); raise --strength or --steps");
        if (float.IsNaN(r.Guidance) || r.Guidance < 0 || r.Guidance > 100) throw new InvalidInputException($"guidance must be between 0 and 100, got {r.Guidance}");
        if (!float.IsFinite(r.AestheticScore) || !float.IsFinite(r.NegativeAestheticScore)) throw new InvalidInputException("aesthetic scores must be finite numbers");
    }
}
