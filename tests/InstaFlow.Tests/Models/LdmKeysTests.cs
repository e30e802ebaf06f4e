// The LDM key table built from SD-1.5's config against entries of diffusers' hard-coded conversion table, and the
// embedded CLIP tokenizer against the tokenizer folder it was taken from.
using InstaFlow.Models.Clip;
using InstaFlow.Models.Ldm;
using InstaFlow.Models.Unet;

namespace InstaFlow.Tests.Models;

public sealed class LdmKeysTests
{
    [Theory]
    [InlineData("input_blocks.1.1.", "down_blocks.0.attentions.0.")]
    [InlineData("input_blocks.3.0.op.", "down_blocks.0.downsamplers.0.conv.")]
    [InlineData("input_blocks.11.0.", "down_blocks.3.resnets.1.")]
    [InlineData("output_blocks.2.1.", "up_blocks.0.upsamplers.0.")]
    [InlineData("output_blocks.5.2.", "up_blocks.1.upsamplers.0.")]
    [InlineData("output_blocks.11.1.", "up_blocks.3.attentions.2.")]
    [InlineData("middle_block.1.", "mid_block.attentions.0.")]
    public void UnetTable_Sd15Config_MatchesDiffusersScriptEntry(string ldm, string diffusers)
    {
        var table = LdmKeys.UnetTable(new UNet2DConditionConfig());
        Assert.True(table.TryGetValue(ldm, out var got), $"{ldm} missing from the table");
        Assert.Equal(diffusers, got.Diffusers);
    }

    [Fact]
    public void UnetTable_Sd15Config_HasNoAttentionInLowestLevel()
    {
        var table = LdmKeys.UnetTable(new UNet2DConditionConfig());
        Assert.False(table.ContainsKey("input_blocks.10.1."));
        Assert.False(table.ContainsKey("output_blocks.0.1."));
    }

    [Fact]
    public void Standard_EmbeddedTokenizer_SameIdsAsTokenizerFolder()
    {
        var folder = ClipTokenizer.FromDirectory(Path.Combine(TestUtil.RepoRoot, "models", "twemoji-instaflow", "tokenizer"));
        var embedded = ClipTokenizer.Standard();
        foreach (var prompt in new[] { "a photo of a cat", "Portrait of an old sailor, oil painting!!", "日本 flag <|endoftext|>" })
            Assert.Equal(folder.Encode(prompt), embedded.Encode(prompt));
        Assert.Equal(49408, embedded.VocabSize);
    }
}
