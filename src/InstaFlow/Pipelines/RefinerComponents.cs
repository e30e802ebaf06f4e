// Loads an SDXL-Refiner-style diffusers folder (tokenizer_2, text_encoder_2 = CLIPTextModelWithProjection, a
// "text_time" UNet, the VAE and the Euler scheduler config), checks the parts fit, and owns their weights.
using InstaFlow.Flow.Schedulers;
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Pipelines;

public sealed class RefinerComponents : IDisposable
{
    public required string Name { get; init; }
    public required ClipTokenizer Tokenizer { get; init; }
    public required ClipTextModelWithProjection TextEncoder { get; init; }
    public required UNet2DConditionModel Unet { get; init; }
    public required AutoencoderKL Vae { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }
    /// <summary>model_index.json's requires_aesthetics_score: time ids end in an aesthetic score (refiner) rather than a target size.</summary>
    public bool RequiresAestheticsScore { get; init; } = true;
    /// <summary>model_index.json's force_zeros_for_empty_prompt: no negative prompt means zero embeddings, not the encoded "".</summary>
    public bool ForceZerosForEmptyPrompt { get; init; }

    /// <summary>
    /// variant picks e.g. diffusion_pytorch_model.fp16.safetensors where present; F16 Linear and Conv2d weights stay
    /// F16 in memory (the 2.3 B-parameter UNet takes 4.6 GB, not 9.2) and are widened inside the kernels.
    /// </summary>
    public static RefinerComponents Load(string dir, string? variant = null)
    {
        var f = DiffusersFolder.Open(dir);
        if (!f.Components.ContainsKey("text_encoder_2") || !f.Components.ContainsKey("unet"))
            throw new InvalidInputException($"{f.Root}: model_index.json lists no text_encoder_2 and unet; --refiner/refine --model needs an SDXL-Refiner folder (e.g. stabilityai/stable-diffusion-xl-refiner-1.0)");
        string Pick(string comp, string stem)
        {
            if (variant != null && File.Exists(Path.Combine(f.Component(comp), $"{stem}.{variant}.safetensors"))) return f.Weights(comp, stem, variant);
            return f.Weights(comp, stem, null);
        }

        var tokenizer = ClipTokenizer.FromDirectory(f.Component("tokenizer_2"));
        var text = ClipTextModelWithProjection.FromConfig(Path.Combine(f.Component("text_encoder_2"), "config.json"));
        StateDictLoader.Load(text, Pick("text_encoder_2", "model"), ignoredKeys: ClipTextModel.IgnoredKeys, precision: WeightPrecision.Stored);
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(f.Component("unet"), "config.json")));
        StateDictLoader.Load(unet, Pick("unet", "diffusion_pytorch_model"), precision: WeightPrecision.Stored);
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(f.Component("vae"), "config.json")));
        StateDictLoader.Load(vae, Pick("vae", "diffusion_pytorch_model"), AutoencoderKL.RenameLegacyKey, precision: WeightPrecision.Stored);
        var scheduler = SchedulerConfig.Load(Path.Combine(f.Component("scheduler"), "scheduler_config.json"));

        var index = ConfigFile.Load(Path.Combine(f.Root, "model_index.json"));
        var c = unet.Config;
        bool aesthetics = index.Bool("requires_aesthetics_score", true);
        int timeIds = aesthetics ? 5 : 6;
        if (c.AdditionEmbedType != "text_time")
            throw new InvalidInputException($"{f.Root}/unet/config.json: addition_embed_type is {c.AdditionEmbedType ?? "null"}; an SDXL refiner's UNet has \"text_time\"");
        if (text.Config.HiddenSize != c.CrossAttentionDim)
            throw new InvalidInputException($"{f.Root}: text_encoder_2 hidden_size {text.Config.HiddenSize} does not match unet cross_attention_dim {c.CrossAttentionDim}");
        if (text.ProjectionDim + timeIds * c.AdditionTimeEmbedDim != c.ProjectionClassEmbeddingsInputDim)
            throw new InvalidInputException($"{f.Root}: unet projection_class_embeddings_input_dim {c.ProjectionClassEmbeddingsInputDim} is not text_encoder_2 projection_dim {text.ProjectionDim} " +
                $"+ {timeIds} time ids x addition_time_embed_dim {c.AdditionTimeEmbedDim}");
        if (vae.Config.LatentChannels != c.InChannels)
            throw new InvalidInputException($"{f.Root}: vae latent_channels {vae.Config.LatentChannels} does not match unet in_channels {c.InChannels}");
        return new RefinerComponents
        {
            Name = Path.GetFileName(f.Root.TrimEnd(Path.DirectorySeparatorChar)), Tokenizer = tokenizer, TextEncoder = text, Unet = unet, Vae = vae,
            SchedulerConfig = scheduler,
            RequiresAestheticsScore = aesthetics,
            ForceZerosForEmptyPrompt = index.Bool("force_zeros_for_empty_prompt", false),
        };
    }

    /// <summary>True once text_encoder_2 or the UNet was released: these components cannot refine again.</summary>
    public bool WeightsReleased { get; private set; }

    /// <summary>Frees text_encoder_2 or the UNet when a one-shot refinement is done with it (memory-mapped weights are unmapped).</summary>
    public void Release(Module network)
    {
        if (!ReferenceEquals(network, TextEncoder) && !ReferenceEquals(network, Unet))
            throw new ArgumentException("only text_encoder_2 and the UNet can be released; the VAE decodes last");
        network.FreeWeights();
        BufferPool.Trim();
        WeightsReleased = true;
    }

    public void Dispose()
    {
        foreach (var m in new Module[] { TextEncoder, Unet, Vae })
            foreach (var p in m.Parameters()) p.Value.Dispose();
    }
}
