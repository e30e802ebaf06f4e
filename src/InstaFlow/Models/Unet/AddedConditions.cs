// SDXL's added conditions (diffusers' added_cond_kwargs for addition_embed_type "text_time"): the pooled, projected
// text embedding and the micro-conditioning time ids, turned into an embedding added to the timestep embedding.
using InstaFlow.Tensors;

namespace InstaFlow.Models.Unet;

/// <param name="TextEmbeds">[B, P] pooled projected text embeddings (text_encoder_2's text_embeds).</param>
/// <param name="TimeIds">[B, K] time ids; the refiner's K = 5: original height, width, crop top, left, aesthetic score.</param>
public sealed record AddedConditions(Tensor TextEmbeds, Tensor TimeIds)
{
    /// <summary>
    /// add_embedding(cat([text_embeds, add_time_proj(time_ids).reshape(B, K * d)])) -> [B, time_embed_dim]. Each time
    /// id goes through the same sinusoidal projection as the timestep (flip_sin_to_cos, freq_shift of the config).
    /// </summary>
    internal static Tensor Embed(UNet2DConditionModel unet, AddedConditions? added, int batch)
    {
        var c = unet.Config;
        if (added == null)
            throw new ArgumentException("UNet: addition_embed_type \"text_time\" needs added conditions (text_embeds and time_ids), as diffusers' added_cond_kwargs");
        var (text, ids) = (added.TextEmbeds, added.TimeIds);
        if (text.Rank != 2 || text.Dim(0) != batch || ids.Rank != 2 || ids.Dim(0) != batch)
            throw new ArgumentException($"UNet: text_embeds {text.Describe()} and time_ids {ids.Describe()} should both be [{batch}, *]");
        int width = text.Dim(1) + ids.Dim(1) * c.AdditionTimeEmbedDim;
        if (width != c.ProjectionClassEmbeddingsInputDim)
            throw new ArgumentException($"UNet: text_embeds width {text.Dim(1)} + {ids.Dim(1)} time ids x {c.AdditionTimeEmbedDim} = {width}, " +
                $"but projection_class_embeddings_input_dim is {c.ProjectionClassEmbeddingsInputDim}");
        // 1. sinusoidal projection of every time id: [B*K, d], then one row per sample [B, K*d]
        var proj = TimestepEmbedding.Sinusoidal(ids.Span.ToArray(), c.AdditionTimeEmbedDim, c.FlipSinToCos, c.FreqShift);
        unet.Hook?.Invoke("add_time_proj", proj);
        var timeEmbeds = Ops.Reshape(proj, batch, ids.Dim(1) * c.AdditionTimeEmbedDim);
        // 2. concatenated after the text embeddings, through linear_1, SiLU, linear_2
        var aug = unet.AddEmbedding!.Forward(Ops.Concat(new[] { text, timeEmbeds }, 1));
        unet.Hook?.Invoke("add_embedding", aug);
        return aug;
    }
}
