// CLIPTextModel configuration (transformers CLIPTextConfig), with the SD-1.5 (CLIP ViT-L/14) values as defaults.
namespace InstaFlow.Models.Clip;

public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public float LayerNormEps { get; init; } = 1e-5f;
    public int EosTokenId { get; init; } = 2;

    public static ClipTextConfig Load(string path) => From(ConfigFile.Load(path));

    public static ClipTextConfig From(ConfigFile c)
    {
        var cfg = new ClipTextConfig
        {
            VocabSize = c.Int("vocab_size", 49408),
            HiddenSize = c.Int("hidden_size", 768),
            IntermediateSize = c.Int("intermediate_size", 3072),
            NumHiddenLayers = c.Int("num_hidden_layers", 12),
            NumAttentionHeads = c.Int("num_attention_heads", 12),
            MaxPositionEmbeddings = c.Int("max_position_embeddings", 77),
            HiddenAct = c.String("hidden_act", "quick_gelu")!,
            LayerNormEps = c.Float("layer_norm_eps", 1e-5f),
            EosTokenId = c.Int("eos_token_id", 2),
        };
        c.Require("hidden_act", cfg.HiddenAct is "quick_gelu" or "gelu" or "gelu_new", $"\"{cfg.HiddenAct}\"", "quick_gelu, gelu, gelu_new");
        if (cfg.HiddenSize % cfg.NumAttentionHeads != 0)
            throw new InvalidInputException($"{c.Path}: hidden_size {cfg.HiddenSize} is not divisible by num_attention_heads {cfg.NumAttentionHeads}");
        return cfg;
    }
}
