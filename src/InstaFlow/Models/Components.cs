// The small interfaces pipelines hold their networks behind (text encoder, denoiser, latent decoder and encoder), so
// another backend (ONNX Runtime, a GPU) can stand in for our modules without touching a recipe.
using InstaFlow.Tensors;

namespace InstaFlow.Models;

/// <summary>Prompts to the hidden states a denoiser cross-attends to.</summary>
public interface ITextEncoder
{
    /// <summary>prompts -> [B, T, D] encoder hidden states (each prompt padded or cut to the encoder's T tokens).</summary>
    Tensor Encode(IReadOnlyList<string> prompts);

    /// <summary>One warning per prompt that does not fit in T tokens, naming the words that were cut.</summary>
    IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts);
}

/// <summary>
/// A denoising network at given network timesteps: the SD UNet, optionally with a ControlNet adding residuals. It knows
/// nothing of time grids or flows: samplers and pipelines decide which timesteps it sees.
/// </summary>
public interface IDenoiser
{
    /// <summary>Latent channels it reads and writes.</summary>
    int LatentChannels { get; }

    /// <summary>Its training resolution in latent pixels (diffusers' sample_size).</summary>
    int SampleSize { get; }

    /// <summary>sample [B, C, h, w], timesteps [B] (network time), context [B, T, D] -> output [B, C, h, w].</summary>
    Tensor Forward(Tensor sample, float[] timesteps, Tensor context);
}

/// <summary>What a pipeline needs to turn the sampler's latents into an image: AutoencoderKL's decoder, or TAESD's.</summary>
public interface ILatentDecoder
{
    int LatentChannels { get; }
    /// <summary>Image pixels per latent pixel.</summary>
    int ScaleFactor { get; }
    /// <summary>The pipeline divides the sampler's latents by this before Decode (diffusers' vae.config.scaling_factor).</summary>
    float ScalingFactor { get; }
    /// <summary>latents: [B, L, h, w] -> image [B, 3, h*f, w*f], about [-1, 1].</summary>
    Tensor Decode(Tensor latents);
}

/// <summary>Images to the latents a sampler works in (inversion, image-to-image).</summary>
public interface ILatentEncoder
{
    int LatentChannels { get; }
    /// <summary>Image pixels per latent pixel.</summary>
    int ScaleFactor { get; }
    /// <summary>image [B, 3, H, W] in [-1, 1] -> the sampler's (scaled) latents [B, L, H/f, W/f]; deterministic (posterior mean).</summary>
    Tensor EncodeLatents(Tensor image);
}
