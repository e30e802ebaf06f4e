// transformers CLIPTextModelWithProjection (SDXL's text_encoder_2): the CLIP text transformer plus a bias-free
// text_projection of the pooled end-of-text state. SDXL feeds the UNet the penultimate layer's hidden states.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Clip;

/// <param name="Penultimate">hidden_states[-2]: the output of the second-to-last layer, no final LayerNorm [B, T, D].</param>
/// <param name="LastHiddenState">After the final LayerNorm [B, T, D].</param>
/// <param name="TextEmbeds">text_projection(final_layer_norm(last)[eos]) [B, projection_dim].</param>
public sealed record ClipProjectedOutput(Tensor Penultimate, Tensor LastHiddenState, Tensor TextEmbeds);

public sealed class ClipTextModelWithProjection : Module
{
    public ClipTextConfig Config { get; }
    public int ProjectionDim { get; }
    public ClipTextTransformer TextModel { get; }
    public Linear TextProjection { get; }

    public ClipTextModelWithProjection(ClipTextConfig config, int projectionDim)
    {
        Config = config;
        ProjectionDim = projectionDim;
        TextModel = Child("text_model", new ClipTextTransformer(config));
        TextProjection = Child("text_projection", new Linear(config.HiddenSize, projectionDim, bias: false));
    }

    /// <summary>config.json of a CLIPTextModelWithProjection: the text config plus projection_dim (default 512, as transformers).</summary>
    public static ClipTextModelWithProjection FromConfig(string configPath)
    {
        var file = ConfigFile.Load(configPath);
        int projection = file.Int("projection_dim", 512);
        if (projection <= 0) throw new InvalidInputException($"{configPath}: projection_dim must be positive, got {projection}");
        return new ClipTextModelWithProjection(ClipTextConfig.From(file), projection);
    }

    /// <summary>ids: [B, T] -> penultimate hidden states, last hidden state and projected text embeddings.</summary>
    public ClipProjectedOutput Forward(int[] ids, int batch)
    {
        // 1. the plain text model, keeping the input of the last layer (= output of the penultimate one) from its hook
        Tensor? penultimate = null;
        string wanted = $"hidden_states.{Config.NumHiddenLayers - 1}";
        var outer = TextModel.Hook;
        TextModel.Hook = (k, t) => { if (k == wanted) penultimate = t; outer?.Invoke(k, t); };
        Tensor last, pooled;
        try { (last, pooled) = TextModel.Forward(ids, batch); }
        finally { TextModel.Hook = outer; }
        // 2. projection of the pooled end-of-text state
        var embeds = TextProjection.Forward(pooled);
        return new ClipProjectedOutput(penultimate!, last, embeds);
    }
}
