// transformers CLIPModel for CLIP scores: the text tower (as SD's text encoder) and the ViT vision tower, each with a
// bias-free projection into the shared embedding space. Config and key names as in transformers' CLIPConfig.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Clip;

public sealed record ClipVisionConfig
{
    public int HiddenSize { get; init; } = 1024;
    public int IntermediateSize { get; init; } = 4096;
    public int NumHiddenLayers { get; init; } = 24;
    public int NumAttentionHeads { get; init; } = 16;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 14;
    public int NumChannels { get; init; } = 3;
    public string HiddenAct { get; init; } = "quick_gelu";
    public float LayerNormEps { get; init; } = 1e-5f;

    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);

    /// <summary>The transformer settings the vision tower shares with the text tower's encoder layers.</summary>
    public ClipTextConfig EncoderConfig => new()
    {
        HiddenSize = HiddenSize, IntermediateSize = IntermediateSize, NumHiddenLayers = NumHiddenLayers,
        NumAttentionHeads = NumAttentionHeads, HiddenAct = HiddenAct, LayerNormEps = LayerNormEps,
    };

    public static ClipVisionConfig From(ConfigFile c)
    {
        var cfg = new ClipVisionConfig
        {
            HiddenSize = c.Int("hidden_size", 1024),
            IntermediateSize = c.Int("intermediate_size", 4096),
            NumHiddenLayers = c.Int("num_hidden_layers", 24),
            NumAttentionHeads = c.Int("num_attention_heads", 16),
            ImageSize = c.Int("image_size", 224),
            PatchSize = c.Int("patch_size", 14),
            NumChannels = c.Int("num_channels", 3),
            HiddenAct = c.String("hidden_act", "quick_gelu")!,
            LayerNormEps = c.Float("layer_norm_eps", 1e-5f),
        };
        c.Require("hidden_act", cfg.HiddenAct is "quick_gelu" or "gelu", $"\"{cfg.HiddenAct}\"", "quick_gelu, gelu");
        if (cfg.ImageSize % cfg.PatchSize != 0) throw new InvalidInputException($"{c.Path}: image_size {cfg.ImageSize} is not a multiple of patch_size {cfg.PatchSize}");
        return cfg;
    }
}

/// <summary>CLIPVisionTransformer: patches + class token + positions, pre-LN, non-causal encoder, post-LN of the class token.</summary>
public sealed class ClipVisionTransformer : Module
{
    private readonly ClipVisionConfig _cfg;
    public readonly Conv2d PatchEmbedding;
    public readonly Parameter ClassEmbedding;
    public readonly Embedding PositionEmbedding;
    public readonly LayerNorm PreLayerNorm, PostLayerNorm;
    public readonly ClipEncoder Encoder;

    public Action<string, Tensor>? Hook { get; set; }

    public ClipVisionTransformer(ClipVisionConfig c)
    {
        _cfg = c;
        var emb = Child("embeddings", new Named());
        ClassEmbedding = emb.AddParam("class_embedding", c.HiddenSize);
        PatchEmbedding = emb.Add("patch_embedding", new Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize, bias: false));
        PositionEmbedding = emb.Add("position_embedding", new Embedding(c.NumPatches + 1, c.HiddenSize));
        // "pre_layrnorm" is how the checkpoints spell it
        PreLayerNorm = Child("pre_layrnorm", new LayerNorm(c.HiddenSize, c.LayerNormEps));
        Encoder = Child("encoder", new ClipEncoder(c.EncoderConfig, causal: false));
        PostLayerNorm = Child("post_layernorm", new LayerNorm(c.HiddenSize, c.LayerNormEps));
    }

    /// <summary>pixel_values: [B, 3, S, S] (normalized) -> (last_hidden_state [B, 1 + P, D], pooler_output [B, D]).</summary>
    public (Tensor LastHiddenState, Tensor Pooled) Forward(Tensor pixels)
    {
        // pixels: [B, C, S, S]
        if (pixels.Rank != 4 || pixels.Dim(2) != _cfg.ImageSize || pixels.Dim(3) != _cfg.ImageSize)
            throw new ArgumentException($"CLIP vision model: expects [B, {_cfg.NumChannels}, {_cfg.ImageSize}, {_cfg.ImageSize}] pixels, got {pixels.Describe()}");
        int b = pixels.Dim(0), d = _cfg.HiddenSize;
        // 1. patches as tokens, row-major over the grid, after the class token; plus positions
        var patches = Ops.Permute(Ops.Reshape(PatchEmbedding.Forward(pixels), b, d, -1), 0, 2, 1);
        var cls = Ops.Add(Tensor.Zeros(b, 1, d), Ops.Reshape(ClassEmbedding.Value, 1, 1, d));
        var h = Ops.Add(Ops.Concat([cls, patches], 1), Ops.Reshape(PositionEmbedding.Weight.Value, 1, _cfg.NumPatches + 1, d));
        // 2. pre-LN, then the encoder layers
        h = PreLayerNorm.Forward(h);
        Hook?.Invoke("hidden_states.0", h);
        for (int i = 0; i < Encoder.Layers.Length; i++)
        {
            h = Encoder.Layers[i].Forward(h);
            Hook?.Invoke($"hidden_states.{i + 1}", h);
        }
        // 3. the class token, post-LN
        var pooled = PostLayerNorm.Forward(Ops.Reshape(Ops.Narrow(h, 1, 0, 1), b, d));
        return (h, pooled);
    }

    private sealed class Named : Module
    {
        public T Add<T>(string name, T module) where T : Module => Child(name, module);
        public Parameter AddParam(string name, params int[] shape) => Param(name, shape);
    }
}

public sealed class ClipModel : Module
{
    public ClipTextConfig TextConfig { get; }
    public ClipVisionConfig VisionConfig { get; }
    public int ProjectionDim { get; }
    public readonly ClipTextTransformer TextModel;
    public readonly ClipVisionTransformer VisionModel;
    public readonly Linear TextProjection, VisualProjection;

    public ClipModel(ClipTextConfig text, ClipVisionConfig vision, int projectionDim)
    {
        TextConfig = text; VisionConfig = vision; ProjectionDim = projectionDim;
        TextModel = Child("text_model", new ClipTextTransformer(text));
        VisionModel = Child("vision_model", new ClipVisionTransformer(vision));
        TextProjection = Child("text_projection", new Linear(text.HiddenSize, projectionDim, bias: false));
        VisualProjection = Child("visual_projection", new Linear(vision.HiddenSize, projectionDim, bias: false));
    }

    /// <summary>ids: [B, T] -> text_embeds [B, P] (projection of the end-of-text token's state).</summary>
    public Tensor TextEmbeds(int[] ids, int batch) => TextProjection.Forward(TextModel.Forward(ids, batch).Item2);

    /// <summary>pixel_values: [B, 3, S, S] -> image_embeds [B, P] (projection of the post-normed class token).</summary>
    public Tensor ImageEmbeds(Tensor pixels) => VisualProjection.Forward(VisionModel.Forward(pixels).Pooled);

    /// <summary>A transformers CLIPModel folder: config.json (text_config, vision_config, projection_dim) and model.safetensors.</summary>
    public static (ClipModel Model, LoadReport Report) Load(string dir)
    {
        var cfgPath = Path.Combine(dir, "config.json");
        var c = ConfigFile.Load(cfgPath);
        int projection = c.Int("projection_dim", 768);
        var text = ClipTextConfig.From(c.Section("text_config"));
        var vision = ClipVisionConfig.From(c.Section("vision_config"));
        var m = new ClipModel(text, vision, projection);
        var weights = Path.Combine(dir, "model.safetensors");
        if (!File.Exists(weights)) throw new FileNotFoundException($"{weights}: CLIP weights not found (convert pytorch_model.bin to safetensors)", weights);
        // logit_scale only scales contrastive logits; a CLIP score never uses it
        var report = StateDictLoader.Load(m, weights, ignoredKeys: ["logit_scale", "text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"]);
        m.SetRequiresGrad(false);
        return (m, report);
    }
}
