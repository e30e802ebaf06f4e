// Prompts to CLIP hidden states: the tokenizer (padded or cut to the encoder's context length) and the text model's
// last_hidden_state, as diffusers' _encode_prompt does for SD-1.5. The one prompt encoder of every pipeline.
using InstaFlow.Tensors;

namespace InstaFlow.Models.Clip;

public sealed class ClipPromptEncoder(ClipTokenizer tokenizer, ClipTextModel model) : ITextEncoder
{
    public ClipTokenizer Tokenizer { get; } = tokenizer;
    public ClipTextModel Model { get; } = model;

    /// <summary>Tokens per prompt, start and end tokens included (max_position_embeddings).</summary>
    public int MaxTokens => Model.Config.MaxPositionEmbeddings;

    /// <summary>The token ids of the prompts, one row of MaxTokens each.</summary>
    public int[] TokenIds(IReadOnlyList<string> prompts)
    {
        var ids = new int[prompts.Count * MaxTokens];
        for (int i = 0; i < prompts.Count; i++) Tokenizer.Tokenize(prompts[i], MaxTokens).Ids.CopyTo(ids, i * MaxTokens);
        return ids;
    }

    /// <summary>prompts -> last_hidden_state [B, MaxTokens, hidden_size].</summary>
    public Tensor Encode(IReadOnlyList<string> prompts) => EncodeIds(TokenIds(prompts), prompts.Count);

    /// <summary>ids [B * MaxTokens] -> last_hidden_state [B, MaxTokens, hidden_size].</summary>
    public Tensor EncodeIds(int[] ids, int batch) => Model.Forward(ids, batch).LastHiddenState;

    public IEnumerable<string> TruncationWarnings(IEnumerable<string> prompts)
    {
        foreach (var p in prompts)
        {
            var t = Tokenizer.Tokenize(p, MaxTokens);
            if (t.Truncated) yield return $"prompt is longer than {MaxTokens} tokens; these words were cut: \"{t.CutText}\"";
        }
    }
}
