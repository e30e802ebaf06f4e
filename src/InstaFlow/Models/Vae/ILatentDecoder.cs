// What a pipeline needs to turn the sampler's latents into an image: AutoencoderKL's decoder, or TAESD's in its place.
using InstaFlow.Tensors;

namespace InstaFlow.Models.Vae;

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
