// Where a model's weights come from: a diffusers folder or one checkpoint file (LDM single file, .ckpt/.safetensors),
// with the options that go with it (architecture configs for non-standard files, EMA weights, a replacement UNet).
namespace InstaFlow.Pipelines;

/// <summary>What SdComponents.Open loads. Path: a diffusers folder, or an SD-1.x single-file checkpoint.</summary>
public sealed record ModelSource(string Path)
{
    /// <summary>A diffusers folder whose unet/vae/text_encoder configs and tokenizer describe a single file (default: SD-1.5's).</summary>
    public string? ConfigDir { get; init; }
    /// <summary>Use the checkpoint's EMA UNet weights (model_ema.*) instead of the trained ones.</summary>
    public bool Ema { get; init; }
    /// <summary>A diffusers-named UNet state dict (.pt/.bin/.safetensors) that replaces the UNet weights, as InstaFlow's demo loads instaflow_0_9B.pt.</summary>
    public string? UnetFile { get; init; }
    /// <summary>Folder weights variant, e.g. fp16.</summary>
    public string? Variant { get; init; }
    /// <summary>
    /// How the weights are held: Stored (the default) keeps F16/BF16 files' Linear and Conv2d weights at half size for
    /// inference; Float32 widens everything, for training or editing the weights.
    /// </summary>
    public Nn.WeightPrecision Precision { get; init; } = Nn.WeightPrecision.Stored;

    /// <summary>The folder or file itself, as users name the model.</summary>
    public override string ToString() => Path;
}
