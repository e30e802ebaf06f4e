// Text conditioning for the Twemoji flows: a CLIP text encoder and a UNet trained together as one velocity network
// whose condition is the prompt's token ids, and the table of training captions those ids come from.
using InstaFlow.Flow;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Training.Data;

namespace InstaFlow.Training.TextToImage;

/// <summary>
/// The condition is a [B, L] tensor of token ids (exact in float32), not text embeddings, so condition dropout and
/// classifier-free guidance swap whole prompts and the text encoder is trained end to end with the UNet.
/// </summary>
public sealed class TextToImageVelocity : Module, IVelocityModel
{
    public TextToImageVelocity(ClipTextModel text, UNet2DConditionModel unet)
    {
        if (text.Config.HiddenSize != unet.Config.CrossAttentionDim)
            throw new InvalidInputException($"text hidden size {text.Config.HiddenSize} differs from the UNet's cross_attention_dim {unet.Config.CrossAttentionDim}");
        Text = Child("text_encoder", text);
        Unet = Child("unet", unet);
    }

    public ClipTextModel Text { get; }
    public UNet2DConditionModel Unet { get; }

    public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond)
    {
        if (cond == null) throw new ArgumentException("the text-to-image network needs token ids as its condition (the empty prompt's ids for unconditional)");
        var ids = cond.ToArray().Select(v => (int)v).ToArray();
        var context = Text.Forward(ids, cond.Dim(0)).LastHiddenState;
        return Unet.Forward(x, modelTime.ToArray(), context);
    }
}

/// <summary>How training draws its captions.</summary>
public enum CaptionSampling
{
    /// <summary>Every image equally often (an emoji with 25 skin-tone variations 25 times as often as one without).</summary>
    PerImage,
    /// <summary>Every emoji equally often (its skin-tone variations share its draws), then one of its images.</summary>
    PerEmoji,
}

/// <summary>
/// Captions of the training items, tokenized once: caption j belongs to item Items[j]; item k's captions (main first,
/// then extras) are the rows Start[k] .. Start[k] + Count[k] - 1; Emojis groups the items k by
/// <see cref="TwemojiDataset.EmojiKey"/> of their main caption.
/// </summary>
public sealed class CaptionTable
{
    private CaptionTable(string[] texts, int[] items, int[] start, int[] count, int[][] emojis, Tensor ids, Tensor nullIds)
    {
        Texts = texts; Items = items; Start = start; Count = count; Emojis = emojis; Ids = ids; NullIds = nullIds;
    }

    public string[] Texts { get; }
    /// <summary>Dataset item index of each caption.</summary>
    public int[] Items { get; }
    public int[] Start { get; }
    public int[] Count { get; }
    /// <summary>The items k of each emoji, in order of first appearance.</summary>
    public int[][] Emojis { get; }
    /// <summary>[M, L] token ids as floats, persistent.</summary>
    public Tensor Ids { get; }
    /// <summary>[1, L]: the empty prompt, the null condition for dropout and guidance.</summary>
    public Tensor NullIds { get; }
    public int Length => Texts.Length;

    public static CaptionTable Build(IReadOnlyList<TwemojiItem> dataItems, int[] itemIndices, ClipTokenizer tokenizer, int maxLength)
    {
        var texts = new List<string>(); var items = new List<int>();
        var start = new int[itemIndices.Length]; var count = new int[itemIndices.Length];
        for (int k = 0; k < itemIndices.Length; k++)
        {
            var caps = TwemojiImages.CaptionsOf(dataItems[itemIndices[k]]);
            start[k] = texts.Count; count[k] = caps.Length;
            texts.AddRange(caps);
            items.AddRange(Enumerable.Repeat(itemIndices[k], caps.Length));
        }
        var ids = Tensor.EmptyPersistent(texts.Count, maxLength);
        for (int j = 0; j < texts.Count; j++) Tokenize(tokenizer, texts[j], maxLength).CopyTo(ids.Span.Slice(j * maxLength, maxLength));
        var nullIds = Tensor.EmptyPersistent(1, maxLength);
        Tokenize(tokenizer, "", maxLength).CopyTo(nullIds.Span);
        var emojis = Enumerable.Range(0, itemIndices.Length).GroupBy(k => TwemojiDataset.EmojiKey(dataItems[itemIndices[k]].Caption), StringComparer.Ordinal)
            .Select(g => g.ToArray()).ToArray();
        return new CaptionTable(texts.ToArray(), items.ToArray(), start, count, emojis, ids, nullIds);
    }

    public static float[] Tokenize(ClipTokenizer tokenizer, string text, int maxLength) =>
        tokenizer.Tokenize(text, maxLength).Ids.Select(i => (float)i).ToArray();

    /// <summary>Token ids [B, L] of the given captions.</summary>
    public Tensor Lookup(int[] captions) => TwemojiImages.Gather(Ids, captions);

    /// <summary>
    /// Caption indices: a training item (uniform over items, or over emojis and then over the emoji's items), then one
    /// of its captions uniformly.
    /// </summary>
    public int[] DrawCaptions(TorchGenerator rng, int batch, CaptionSampling sampling = CaptionSampling.PerImage)
    {
        var r = new int[batch];
        for (int b = 0; b < batch; b++) r[b] = DrawCaption(rng, sampling);
        return r;
    }

    private int DrawCaption(TorchGenerator rng, CaptionSampling sampling)
    {
        int k;
        if (sampling == CaptionSampling.PerEmoji)
        {
            var emoji = Emojis[(int)(rng.NextUInt64() % (ulong)Emojis.Length)];
            k = emoji[(int)(rng.NextUInt64() % (ulong)emoji.Length)];
        }
        else k = (int)(rng.NextUInt64() % (ulong)Start.Length);
        return Start[k] + (int)(rng.NextUInt64() % (ulong)Count[k]);
    }
}
