// InstaFlow's text-to-image recipe (code/pipeline_rf.py): text embeddings, Euler steps of the rectified-flow ODE
// from noise (t = 1000 is noise) with optional classifier-free guidance, VAE decode, uint8 images. With a ControlNet
// and a control image it is code/pipeline_rf_ctrl.py: the ControlNet's residuals go into every UNet call.
using InstaFlow.IO;
using InstaFlow.Models.Unet;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

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
    /// <summary>A control image for the pipeline's ControlNet; the output takes its size.</summary>
    public ControlImage? Control { get; init; }
}

/// <summary>An RGB uint8 HWC control image and the strength of the ControlNet's residuals.</summary>
public sealed record ControlImage(byte[] Hwc, int Width, int Height, float Scale = 1f);

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

    /// <summary>Receives intermediate tensors (prompt_embeds, step{i}.unet_out, step{i}.v_pred, step{i}.latents, image_raw) for tests.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    /// <summary>Used when a request carries a control image.</summary>
    public ControlNetModel? ControlNet { get; set; }

    /// <summary>
    /// For one-shot use (the CLI): free the text encoder after the prompts and the UNet after the last step, so each
    /// stage's activations only share memory with the weights still needed. The pipeline cannot generate again.
    /// </summary>
    public bool ReleaseWeightsAsUsed { get; set; }

    public GenerationResult Generate(GenerationRequest req) => Generate(req, CancellationToken.None);

    /// <summary>
    /// Like Generate(req), but stops with OperationCanceledException between stages and UNet steps once the token is
    /// cancelled, so a server can drop the work of a client that went away.
    /// </summary>
    public GenerationResult Generate(GenerationRequest req, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        if (Model.DenoisersReleased)
            throw new InvalidOperationException($"{Model.Name}: the text encoder and UNet were released after the last generation (ReleaseWeightsAsUsed); load the model again");
        if (req.Control is { } ctl)
        {
            if (ControlNet == null) throw new ArgumentException("the request has a control image but the pipeline has no ControlNet");
            if ((req.Width ?? ctl.Width) != ctl.Width || (req.Height ?? ctl.Height) != ctl.Height)
                throw new ArgumentException($"the control image is {ctl.Width}x{ctl.Height} but the output is {req.Width}x{req.Height}; resize the control image to the output size");
            if (ctl.Hwc.Length != ctl.Width * ctl.Height * 3) throw new ArgumentException($"the control image has {ctl.Hwc.Length} bytes, not {ctl.Width}x{ctl.Height} RGB");
            req = req with { Width = ctl.Width, Height = ctl.Height };
        }
        var (b, width, height, cfg, timer) = PipelineSteps.Prepare(Model, req, DefaultWidth, DefaultHeight, cancellation);

        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Begin();

        // 1-2. tokenize, text encoder; with CFG the batch is cat([negative, positive])
        var context = PipelineSteps.EncodePrompts(Model, req, cfg, Hook, timer.Mark);
        if (ReleaseWeightsAsUsed) Model.Release(Model.TextEncoder);

        // 3. initial noise (init_noise_sigma = 1 for rectified flow); the control image as [1, 3, H, W] in [0, 1]
        var latents = PipelineSteps.InitialNoise(Model, req, width, height);
        var cond = req.Control is { } c ? Tensor.FromArray(ImageTensors.ToChwUnit(c.Hwc, c.Width, c.Height), 1, 3, c.Height, c.Width) : null;

        // 4. Euler steps: t_i = (1 - i/N) * 1000, dt = 1/N, x += dt * v
        int n = req.Steps;
        float dt = (float)(1.0 / n);
        for (int i = 0; i < n; i++)
        {
            using var stepScope = TensorScope.Begin();
            float t = (float)((1.0 - (double)i / n) * 1000.0);
            var input = cfg ? Ops.Concat(new[] { latents, latents }, 0) : latents;
            var tv = Enumerable.Repeat(t, input.Dim(0)).ToArray();
            ControlResiduals? residuals = null;
            if (cond != null)
            {
                // a batch-1 control image broadcasts over the (CFG) batch, as pipeline_rf_ctrl.py does
                residuals = ControlNet!.Forward(input, tv, context, cond, req.Control!.Scale);
                for (int j = 0; j < residuals.Down.Count; j++) Hook?.Invoke($"step{i}.down_block_res_samples.{j}", residuals.Down[j]);
                Hook?.Invoke($"step{i}.mid_block_res_sample", residuals.Mid);
            }
            var v = Model.Unet.Forward(input, tv, context, residuals);
            Hook?.Invoke($"step{i}.unet_out", v);
            if (cfg) v = PipelineSteps.Guide(v, b, req.Guidance);
            Hook?.Invoke($"step{i}.v_pred", v);
            var next = Ops.Add(latents, Ops.MulScalar(v, dt));
            latents = stepScope.Keep(next);
            Hook?.Invoke($"step{i}.latents", latents);
            Progress?.Invoke(i, n);
            timer.Mark($"unet_step{i}");
        }

        // 5-6. decode latents / scaling_factor, postprocess to uint8 HWC (round half to even)
        if (ReleaseWeightsAsUsed) Model.Release(Model.Unet);
        var images = PipelineSteps.Decode(Model, latents, Hook, timer.Mark);
        return new GenerationResult { ImagesHwc = images, Width = width, Height = height, FinalLatents = latents.ClonePersistent(), Timings = timer.Timings };
    }

    /// <summary>Truncation warnings for the prompts (empty when every prompt fits in 77 tokens).</summary>
    public IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts) => PipelineSteps.TruncationWarnings(Model, prompts);
}
