// CLIP tokenizer against the 150 Python goldens (unpadded and padded-77 ids), truncation, decoding and load errors.
using System.Text.Json;
using InstaFlow.Models.Clip;

namespace InstaFlow.Tests.Models;

public class ClipTokenizerTests
{
    private static readonly Lazy<ClipTokenizer> Shared = new(() => ClipTokenizer.FromDirectory(TokenizerDir));

    public static string TokenizerDir => Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer");

    private sealed record Case(int Id, string Category, string Prompt, int[] Unpadded, int[] Padded, string[] Tokens, bool Truncated);

    private static List<Case> Cases() => File.ReadLines(Path.Combine(TestUtil.Fixtures, "tokenizer", "clip_tokenizer_cases.jsonl"))
        .Where(l => l.Length > 0)
        .Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            var r = doc.RootElement;
            int[] Ids(string name) => r.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
            return new Case(r.GetProperty("id").GetInt32(), r.GetProperty("category").GetString()!, r.GetProperty("prompt").GetString()!,
                Ids("ids_unpadded"), Ids("ids_padded_77"), r.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray(),
                r.GetProperty("truncated").GetBoolean());
        })
        .ToList();

    [Fact]
    public void FromDirectory_TinySd15_ReadsClipSpecialTokensAndSizes()
    {
        var tok = Shared.Value;
        Assert.Equal(49408, tok.VocabSize);
        Assert.Equal(49406, tok.BosId);
        Assert.Equal(49407, tok.EosId);
        Assert.Equal(49407, tok.PadId);
        Assert.Equal(77, tok.ModelMaxLength);
    }

    [Fact]
    public void Encode_AllGoldenPrompts_MatchUnpaddedAndPadded77Ids()
    {
        var tok = Shared.Value;
        var cases = Cases();
        Assert.Equal(150, cases.Count);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            Compare(c, "ids_unpadded", c.Unpadded, tok.Encode(c.Prompt), failures);
            var t = tok.Tokenize(c.Prompt);
            Compare(c, "ids_padded_77", c.Padded, t.Ids, failures);
            if (t.Truncated != c.Truncated) failures.Add($"#{c.Id} {JsonSerializer.Serialize(c.Prompt)}: truncated {t.Truncated}, expected {c.Truncated}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures));
    }

    private static void Compare(Case c, string what, int[] expected, int[] actual, List<string> failures)
    {
        if (expected.AsSpan().SequenceEqual(actual)) return;
        int at = 0;
        while (at < Math.Min(expected.Length, actual.Length) && expected[at] == actual[at]) at++;
        string Show(int[] a) => at < a.Length ? a[at].ToString() : "end";
        failures.Add($"#{c.Id} [{c.Category}] {JsonSerializer.Serialize(c.Prompt)} {what}: first difference at {at}: " +
                     $"expected {Show(expected)}, got {Show(actual)} (lengths {expected.Length} vs {actual.Length})");
    }

    [Fact]
    public void Encode_ConcurrentCallsOnOneTokenizer_GiveTheGoldenIds()
    {
        var tok = ClipTokenizer.FromDirectory(TokenizerDir);
        var cases = Cases();
        var results = new int[cases.Count][];
        Parallel.For(0, cases.Count * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            results[i % cases.Count] = tok.Encode(cases[i % cases.Count].Prompt));
        for (int i = 0; i < cases.Count; i++) Assert.Equal(cases[i].Unpadded, results[i]);
    }

    [Fact]
    public void Tokenize_LongPrompt_KeepsFirst75TokensAndReportsCutWords()
    {
        var tok = Shared.Value;
        var prompt = string.Join(' ', Enumerable.Repeat("cat", 75)) + " on a red mat";
        var t = tok.Tokenize(prompt);
        Assert.True(t.Truncated);
        Assert.Equal(77, t.Ids.Length);
        Assert.Equal(tok.BosId, t.Ids[0]);
        Assert.Equal(tok.EosId, t.Ids[76]);
        Assert.All(t.Ids[1..76], id => Assert.Equal(2368, id));
        Assert.Equal("on a red mat", t.CutText);
    }

    [Fact]
    public void Tokenize_ShortPrompt_PadsWithPadIdAndCutsNothing()
    {
        var t = Shared.Value.Tokenize("a photo of a cat", maxLength: 10);
        Assert.False(t.Truncated);
        Assert.Equal("", t.CutText);
        Assert.Equal(new[] { 49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407, 49407 }, t.Ids);
    }

    [Fact]
    public void Decode_PlainLowercaseAsciiPrompts_RoundTrip()
    {
        var tok = Shared.Value;
        var plain = Cases().Select(c => c.Prompt).Where(p => p.Length > 0 && p.All(ch => ch is ' ' or >= 'a' and <= 'z') && !p.Contains("  ")
            && p.Trim() == p).ToList();
        Assert.True(plain.Count >= 10, $"only {plain.Count} plain prompts");
        foreach (var p in plain) Assert.Equal(p, tok.Decode(tok.Encode(p)));
    }

    [Fact]
    public void Decode_AsciiGoldenIds_GiveTheGoldenTokensAsWords()
    {
        var tok = Shared.Value;
        // Decode skips special ids, so prompts that spell out a special token are left out.
        foreach (var c in Cases().Where(c => c.Prompt.All(char.IsAscii) && !c.Prompt.Contains("<|")))
            Assert.Equal(string.Concat(c.Tokens).Replace("</w>", " ").Trim(), tok.Decode(c.Unpadded));
    }

    [Fact]
    public void SplitWords_AstralLettersAndDigits_MatchTheirCodePointClass()
    {
        // Mathematical bold letters are \p{L} (one word with the ASCII letters around them), the bold digit is \p{N}.
        var words = ClipTokenizer.SplitWords("x\U0001D400y \U0001D7CE\U0001D7CF \U0001F431!").ToList();
        Assert.Equal(new[] { "x\U0001D400y", "\U0001D7CE", "\U0001D7CF", "\U0001F431!" }, words);
    }

    // Expected values from Python's unicodedata.normalize("NFC", ...): composition, singletons, Hangul, mark
    // reordering, blocked marks, composition exclusions and a non-starter decomposition.
    [Theory]
    [InlineData("cafe\u0301", "caf\u00e9")]
    [InlineData("\u212b", "\u00c5")]
    [InlineData("a\u0307\u0323", "\u1ea1\u0307")]
    [InlineData("A\u030a\u0327", "\u00c5\u0327")]
    [InlineData("e\u0301\u0301", "\u00e9\u0301")]
    [InlineData("\u1100\u1161\u11a8", "\uac01")]
    [InlineData("\uac00\u11a8", "\uac01")]
    [InlineData("\u0b47\u0b3e", "\u0b4b")]
    [InlineData("\u0915\u093c", "\u0915\u093c")]
    [InlineData("\u0344", "\u0308\u0301")]
    [InlineData("\U0001D15E", "\U0001D157\U0001D165")]
    [InlineData("x\u0301\u0300y", "x\u0301\u0300y")]
    public void Nfc_IcuNormalize_MatchesPythonUnicodedata(string input, string expected) =>
        Assert.Equal(expected, input.Normalize(System.Text.NormalizationForm.FormC));

    [Fact]
    public void Clean_UppercaseGreekAndDottedI_LowerLikePython()
    {
        Assert.Equal("οδος σας", ClipTextCleaner.Clean("ΟΔΟΣ ΣΑΣ", lowerCase: true));
        Assert.Equal("i\u0307stanbul", ClipTextCleaner.Clean("\u0130STANBUL", lowerCase: true));
    }

    // Each case copies the fixture tokenizer to a temp folder and breaks one file (null content: deletes it).
    [Theory]
    [InlineData("vocab.json", null, typeof(FileNotFoundException), "vocab.json")]
    [InlineData("merges.txt", null, typeof(FileNotFoundException), "merges.txt")]
    [InlineData("vocab.json", "{\"a\": 1,", typeof(InvalidInputException), "vocab.json")]
    [InlineData("merges.txt", "#version: 0.2\ni n\nthree parts here\n", typeof(InvalidInputException), "merges.txt:3")]
    [InlineData("tokenizer_config.json", "{\"bos_token\": 5}", typeof(InvalidInputException), "tokenizer_config.json")]
    [InlineData("special_tokens_map.json", "{\"eos_token\": \"<|nope|>\"}", typeof(InvalidInputException), "vocab.json")]
    public void FromDirectory_MissingOrMalformedFile_ThrowsOneLineErrorNamingIt(string file, string? content, Type expected, string mention)
    {
        var dir = Directory.CreateTempSubdirectory("clip-tok-").FullName;
        try
        {
            foreach (var f in Directory.GetFiles(TokenizerDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            if (content == null) File.Delete(Path.Combine(dir, file));
            else File.WriteAllText(Path.Combine(dir, file), content);
            var e = Assert.Throws(expected, () => ClipTokenizer.FromDirectory(dir));
            Assert.Contains(mention, e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
