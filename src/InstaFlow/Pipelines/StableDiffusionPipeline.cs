// The SD-1.5 teacher (diffusers' StableDiffusionPipeline): epsilon prediction sampled with a DDIM, DPM-Solver++ or
// Euler scheduler and classifier-free guidance; the source of InstaFlow's (noise, image latents) training pairs.
using InstaFlow.Flow;
using InstaFlow.Flow.Schedulers;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

public sealed class StableDiffusionPipeline(SdComponents model, NoiseScheduler scheduler)
{
    public SdComponents Model { get; } = model;
    public NoiseScheduler Scheduler { get; } = scheduler;

    public int DefaultHeight => ImageSize.Default(Model);
    public int DefaultWidth => DefaultHeight;

    /// <summary>Called after each UNet step.</summary>
    public Action<GenerationProgress>? Progress { get; set; }

    /// <summary>Receives intermediates for tests: prompt_embeds, init_latents, step{i}.model_input, step{i}.eps, step{i}.latents, image_raw.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    /// <summary>Samples latents and decodes them to images; set DecodeImages = false to stop at the latents.</summary>
    public bool DecodeImages { get; set; } = true;

    /// <summary>
    /// latents = noise * init_noise_sigma; per timestep t: x = scale_model_input(cat([latents] * 2), t),
    /// eps = unet(x, t, cat([neg, pos])), eps = eps_neg + s * (eps_pos - eps_neg), latents = step(eps, t, latents).
    /// Guidance &lt;= 1 runs the prompts alone. InitLatents, when given, is the unscaled noise.
    /// </summary>
    public GenerationResult Generate(GenerationRequest req)
    {
        var (b, width, height, cfg, timer) = PipelineSteps.Prepare(Model, req);

        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        var cond = PipelineSteps.Encode(Model, req.Prompts, req.NegativePrompts, cfg, Hook, timer.Mark);
        var context = cfg ? Guidance.PairCondition(cond.Negative!, cond.Context) : cond.Context;

        Scheduler.SetTimesteps(req.Steps);
        var latents = Ops.MulScalar(PipelineSteps.InitialNoise(Model, req, width, height), Scheduler.InitNoiseSigma);
        Hook?.Invoke("init_latents", latents);

        int n = Scheduler.Timesteps.Length;
        for (int i = 0; i < n; i++)
        {
            using var stepScope = TensorScope.Begin();
            var input = Scheduler.ScaleModelInput(cfg ? Ops.Concat(new[] { latents, latents }, 0) : latents, i);
            Hook?.Invoke($"step{i}.model_input", input);
            // The UNet takes float timesteps: the integers of DDIM/DPM-Solver convert exactly.
            var tv = Enumerable.Repeat(Scheduler.Timesteps[i], input.Dim(0)).ToArray();
            var eps = Model.Unet.Forward(input, tv, context);
            if (cfg) eps = Guidance.Combine(eps, b, req.Guidance);
            Hook?.Invoke($"step{i}.eps", eps);
            latents = stepScope.Keep(Scheduler.Step(eps, i, latents));
            Hook?.Invoke($"step{i}.latents", latents);
            Progress?.Invoke(new GenerationProgress(0, 1, i, n));
            timer.Mark($"unet_step{i}");
        }

        var images = DecodeImages ? PipelineSteps.Decode(Model, latents, Hook, timer.Mark) : Array.Empty<byte[]>();
        var meta = Enumerable.Range(0, b).Select(i => new GenerationMetadata(req.Prompts[i], req.NegativePrompts?[i], req.Steps, req.Guidance,
            SeedPolicy.ImageSeed(req.Seed, i), width, height, Model.Description, Scheduler.Config.ClassName)).ToArray();
        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = latents.ClonePersistent(), Timings = timer.Timings, Metadata = meta };
    }

    public IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts) => Model.PromptEncoder.TruncationWarnings(prompts);
}
