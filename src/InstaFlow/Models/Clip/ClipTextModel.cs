// CLIP text encoder (transformers CLIPTextModel): token + position embeddings, pre-LN transformer layers with a
// causal mask, final layer norm. Its last_hidden_state is the UNet's encoder_hidden_states.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Clip;

public sealed class ClipTextModel : Module
{
    public ClipTextConfig Config { get; }
    public ClipTextTransformer TextModel { get; }

    public ClipTextModel(ClipTextConfig config)
    {
        Config = config;
        TextModel = Child("text_model", new ClipTextTransformer(config));
    }

    /// <summary>ids: [B, T] -> (last_hidden_state [B, T, D], pooler_output [B, D]).</summary>
    public (Tensor LastHiddenState, Tensor Pooled) Forward(int[] ids, int batch) => TextModel.Forward(ids, batch);

    /// <summary>Keys present in real checkpoints that carry no weights we need.</summary>
    public static readonly string[] IgnoredKeys = { "text_model.embeddings.position_ids" };
}

public sealed class ClipTextTransformer : Module
{
    private readonly ClipTextConfig _cfg;
    public readonly ClipEmbeddings Embeddings;
    public readonly ClipEncoder Encoder;
    public readonly LayerNorm FinalLayerNorm;

    /// <summary>Called after each encoder layer with (layer index, hidden states); for golden tests of intermediates.</summary>
    public Action<string, Tensor>? Hook { get; set; }

    public ClipTextTransformer(ClipTextConfig c)
    {
        _cfg = c;
        Embeddings = Child("embeddings", new ClipEmbeddings(c));
        Encoder = Child("encoder", new ClipEncoder(c));
        FinalLayerNorm = Child("final_layer_norm", new LayerNorm(c.HiddenSize, c.LayerNormEps));
    }

    public (Tensor, Tensor) Forward(int[] ids, int batch)
    {
        // ids: [B, T]
        int t = ids.Length / batch;
        if (batch <= 0 || t * batch != ids.Length) throw new ArgumentException($"CLIP text model: {ids.Length} ids do not form a batch of {batch}");
        if (t > _cfg.MaxPositionEmbeddings) throw new ArgumentException($"CLIP text model: sequence of {t} tokens is longer than max_position_embeddings {_cfg.MaxPositionEmbeddings}");
        // 1. embeddings
        var h = Embeddings.Forward(ids, batch, t);
        Hook?.Invoke("hidden_states.0", h);
        // 2. causal transformer layers
        for (int i = 0; i < Encoder.Layers.Length; i++)
        {
            h = Encoder.Layers[i].Forward(h);
            Hook?.Invoke($"hidden_states.{i + 1}", h);
        }
        // 3. final layer norm
        var last = FinalLayerNorm.Forward(h);
        // 4. pooled output: the hidden state at the end-of-text token (argmax of ids, as the legacy eos_token_id=2 path does)
        var rows = new Tensor[batch];
        for (int b = 0; b < batch; b++)
        {
            int arg = 0;
            for (int j = 1; j < t; j++) if (ids[b * t + j] > ids[b * t + arg]) arg = j;
            if (_cfg.EosTokenId != 2)
                for (int j = 0; j < t; j++) if (ids[b * t + j] == _cfg.EosTokenId) { arg = j; break; }
            rows[b] = Ops.Narrow(Ops.Narrow(last, 0, b, 1), 1, arg, 1);
        }
        var pooled = Ops.Reshape(Ops.Concat(rows, 0), batch, _cfg.HiddenSize);
        return (last, pooled);
    }
}

public sealed class ClipEmbeddings : Module
{
    public readonly Embedding TokenEmbedding, PositionEmbedding;

    public ClipEmbeddings(ClipTextConfig c)
    {
        TokenEmbedding = Child("token_embedding", new Embedding(c.VocabSize, c.HiddenSize));
        PositionEmbedding = Child("position_embedding", new Embedding(c.MaxPositionEmbeddings, c.HiddenSize));
    }

    public Tensor Forward(int[] ids, int batch, int t)
    {
        // ids: [B, T] -> [B, T, D]
        var tok = TokenEmbedding.Forward(ids, batch, t);
        var pos = PositionEmbedding.Forward(Enumerable.Range(0, t).ToArray(), 1, t);
        return Ops.Add(tok, pos);
    }
}

public sealed class ClipEncoder : Module
{
    public readonly ClipEncoderLayer[] Layers;

    /// <summary>causal: the text tower's mask; the vision tower attends to every patch.</summary>
    public ClipEncoder(ClipTextConfig c, bool causal = true)
    {
        var list = Child("layers", new ModuleList());
        Layers = Enumerable.Range(0, c.NumHiddenLayers).Select(i => list.Add(new ClipEncoderLayer(c, causal))).ToArray();
    }
}

public sealed class ClipEncoderLayer : Module
{
    public readonly ClipAttention SelfAttn;
    public readonly LayerNorm LayerNorm1, LayerNorm2;
    public readonly ClipMlp Mlp;

    public ClipEncoderLayer(ClipTextConfig c, bool causal = true)
    {
        SelfAttn = Child("self_attn", new ClipAttention(c, causal));
        LayerNorm1 = Child("layer_norm1", new LayerNorm(c.HiddenSize, c.LayerNormEps));
        Mlp = Child("mlp", new ClipMlp(c));
        LayerNorm2 = Child("layer_norm2", new LayerNorm(c.HiddenSize, c.LayerNormEps));
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, T, D]; pre-LN residual blocks
        using var scope = TensorScope.ForInference();
        x = Ops.Add(x, SelfAttn.Forward(LayerNorm1.Forward(x)));
        return scope.KeepOrSelf(Ops.Add(x, Mlp.Forward(LayerNorm2.Forward(x))));
    }
}

public sealed class ClipAttention : Module
{
    private readonly int _heads;
    private readonly bool _causal;
    public readonly Linear QProj, KProj, VProj, OutProj;

    public ClipAttention(ClipTextConfig c, bool causal = true)
    {
        _heads = c.NumAttentionHeads;
        _causal = causal;
        KProj = Child("k_proj", new Linear(c.HiddenSize, c.HiddenSize));
        VProj = Child("v_proj", new Linear(c.HiddenSize, c.HiddenSize));
        QProj = Child("q_proj", new Linear(c.HiddenSize, c.HiddenSize));
        OutProj = Child("out_proj", new Linear(c.HiddenSize, c.HiddenSize));
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, T, D]; self-attention, causal for text (no padding mask: SD feeds padding tokens like any other)
        var o = Ops.Attention(QProj.Forward(x), KProj.Forward(x), VProj.Forward(x), _heads, causal: _causal);
        return OutProj.Forward(o);
    }
}

public sealed class ClipMlp : Module
{
    private readonly string _act;
    public readonly Linear Fc1, Fc2;

    public ClipMlp(ClipTextConfig c)
    {
        _act = c.HiddenAct;
        Fc1 = Child("fc1", new Linear(c.HiddenSize, c.IntermediateSize));
        Fc2 = Child("fc2", new Linear(c.IntermediateSize, c.HiddenSize));
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, T, D]
        var h = Fc1.Forward(x);
        h = _act switch { "quick_gelu" => Ops.QuickGelu(h), "gelu" => Ops.Gelu(h), _ => Ops.GeluTanh(h) };
        return Fc2.Forward(h);
    }
}
