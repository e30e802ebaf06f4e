// CLIP's byte-level BPE tokenizer, matching Hugging Face's slow CLIPTokenizer without ftfy id for id:
// special-token split, BasicTokenizer cleanup, the CLIP word regex, BPE by merge rank, bos/eos, truncate/pad to 77.
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InstaFlow.Models.Clip;

/// <summary>Ids for the text encoder, padded or truncated to a fixed length.</summary>
/// <param name="Ids">Exactly maxLength ids: bos, tokens, eos, then pad ids.</param>
/// <param name="Truncated">Whether the prompt had more tokens than fit.</param>
/// <param name="CutText">The decoded text of the tokens that were dropped ("" when nothing was cut).</param>
public sealed record TokenizedPrompt(int[] Ids, bool Truncated, string CutText);

public sealed partial class ClipTokenizer
{
    // CLIPTokenizer reads only the first 49152 - 256 - 2 merges, whatever the file holds.
    private const int MaxMerges = 49152 - 256 - 2;
    // Prompts repeat words a lot, but the cache must not grow without bound on arbitrary input.
    private const int MaxCacheEntries = 100_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly string?[] _idToToken;
    private readonly Dictionary<(string, string), int> _mergeRanks;
    private readonly string[] _specialTokens;
    private readonly int _unkId;
    private readonly bool _lowerCase;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private int _cacheCount;

    public int VocabSize => _vocab.Count;
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    public int ModelMaxLength { get; }

    private ClipTokenizer(Dictionary<string, int> vocab, Dictionary<(string, string), int> mergeRanks, TokenizerSettings s, string vocabPath)
    {
        _vocab = vocab;
        _mergeRanks = mergeRanks;
        _lowerCase = s.LowerCase;
        ModelMaxLength = s.ModelMaxLength;
        int Id(string token, string role) => vocab.TryGetValue(token, out int id)
            ? id : throw new InvalidInputException($"{vocabPath}: the {role} token '{token}' is not in the vocabulary");
        BosId = Id(s.Bos, "bos");
        EosId = Id(s.Eos, "eos");
        PadId = Id(s.Pad, "pad");
        _unkId = Id(s.Unk, "unk");
        _specialTokens = new[] { s.Bos, s.Eos }.Distinct().ToArray();
        _idToToken = new string?[vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) _idToToken[id] = token;
        // The BPE of a special token is the token itself (CLIPTokenizer seeds its cache the same way), so
        // '<|endoftext|>' that only appears after lower-casing still maps to its id.
        foreach (var t in _specialTokens) _cache[t] = [vocab[t]];
    }

    /// <summary>Loads vocab.json and merges.txt, plus tokenizer_config.json and special_tokens_map.json when present.</summary>
    public static ClipTokenizer FromDirectory(string tokenizerDir)
    {
        if (!Directory.Exists(tokenizerDir)) throw new DirectoryNotFoundException($"tokenizer folder not found: {tokenizerDir}");
        var vocabPath = Path.Combine(tokenizerDir, "vocab.json");
        var vocab = ReadVocab(vocabPath);
        var merges = ReadMerges(Path.Combine(tokenizerDir, "merges.txt"));
        // As in transformers, special_tokens_map.json wins over tokenizer_config.json.
        var settings = TokenizerSettings.Default
            .Apply(Path.Combine(tokenizerDir, "tokenizer_config.json"))
            .Apply(Path.Combine(tokenizerDir, "special_tokens_map.json"));
        return new ClipTokenizer(vocab, merges, settings, vocabPath);
    }

    /// <summary>bos, the prompt's tokens, eos: no truncation, no padding.</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int> { BosId };
        foreach (var (piece, special) in SplitSpecialTokens(text))
        {
            if (special) { ids.Add(_vocab[piece]); continue; }
            foreach (var word in SplitWords(ClipTextCleaner.Clean(piece, _lowerCase))) ids.AddRange(EncodeWord(word));
        }
        ids.Add(EosId);
        return ids.ToArray();
    }

    /// <summary>
    /// Exactly <paramref name="maxLength"/> ids as the SD pipelines feed the text encoder: a longer prompt keeps bos,
    /// its first maxLength - 2 tokens and eos; a shorter one is padded with the pad id.
    /// </summary>
    public TokenizedPrompt Tokenize(string text, int maxLength = 77)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var ids = Encode(text);
        var result = new int[maxLength];
        if (ids.Length <= maxLength)
        {
            ids.CopyTo(result, 0);
            result.AsSpan(ids.Length).Fill(PadId);
            return new TokenizedPrompt(result, false, "");
        }
        ids.AsSpan(0, maxLength - 1).CopyTo(result);
        result[maxLength - 1] = EosId;
        var cut = ids.AsSpan(maxLength - 1, ids.Length - maxLength).ToArray();
        return new TokenizedPrompt(result, true, Decode(cut));
    }

    /// <summary>The text of the ids, words separated by single spaces; bos, eos and pad ids are skipped.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id == BosId || id == EosId || id == PadId) continue;
            var token = (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;
            if (token == null) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is not in the vocabulary");
            foreach (char c in token)
                bytes.Add(ByteLevel.TryDecode(c, out byte b) ? b
                    : throw new InvalidInputException($"vocabulary token {id} '{token}' is not byte-level text"));
        }
        // Invalid UTF-8 (a multi-byte char cut between tokens) becomes U+FFFD, like Python's errors="replace".
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace("</w>", " ").Trim();
    }

    private IEnumerable<(string Piece, bool Special)> SplitSpecialTokens(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int best = -1;
            string? found = null;
            foreach (var t in _specialTokens)
            {
                int at = text.IndexOf(t, start, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best || (at == best && t.Length > found!.Length))) { best = at; found = t; }
            }
            if (found == null) break;
            if (best > start) yield return (text[start..best], false);
            yield return (found, true);
            start = best + found.Length;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    // CLIP's word pattern. Python's regex module applies it to code points; see SplitWords for surrogate pairs.
    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex WordPattern();

    /// <summary>
    /// The CLIP regex matches. .NET's regex sees UTF-16 code units, so an astral letter or digit (a surrogate pair,
    /// category Cs to .NET) would land in the "other" class; such text is matched on a stand-in string with one char
    /// of the same class per code point, and the matches are mapped back.
    /// </summary>
    internal static IEnumerable<string> SplitWords(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            foreach (Match m in WordPattern().Matches(text)) yield return m.Value;
            yield break;
        }
        var standIn = new StringBuilder(text.Length);
        var start = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out var r, out int n);
            start.Add(i);
            standIn.Append(r.IsBmp ? (char)r.Value : StandIn(Rune.GetUnicodeCategory(r)));
            i += n;
        }
        start.Add(text.Length);
        foreach (Match m in WordPattern().Matches(standIn.ToString()))
            yield return text[start[m.Index]..start[m.Index + m.Length]];
    }

    // Stand-ins with no case relation to the pattern's ASCII literals: 'ª' is a caseless letter.
    private static char StandIn(UnicodeCategory c) => c switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => 'ª',
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '0',
        _ => '¤',
    };

    private int[] EncodeWord(string word)
    {
        if (_cache.TryGetValue(word, out var cached)) return cached;
        var symbols = Bpe(ByteLevel.Encode(word));
        var ids = new int[symbols.Count];
        for (int i = 0; i < ids.Length; i++) ids[i] = _vocab.TryGetValue(symbols[i], out int id) ? id : _unkId;
        if (Volatile.Read(ref _cacheCount) < MaxCacheEntries && _cache.TryAdd(word, ids)) Interlocked.Increment(ref _cacheCount);
        return ids;
    }

    /// <summary>Splits a byte-level word into chars ('&lt;/w&gt;' on the last) and merges the lowest-ranked pair until none applies.</summary>
    private List<string> Bpe(string word)
    {
        var symbols = new List<string>(word.Length);
        for (int i = 0; i < word.Length - 1; i++) symbols.Add(word[i].ToString());
        symbols.Add(word[^1] + "</w>");
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue;
            (string, string) best = default;
            for (int i = 0; i < symbols.Count - 1; i++)
            {
                if (_mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = (symbols[i], symbols[i + 1]);
                }
            }
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i < symbols.Count - 1 && symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i++;
                }
                else merged.Add(symbols[i]);
            }
            symbols = merged;
        }
        return symbols;
    }

    private static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer vocabulary not found: {path}", path);
        using var stream = File.OpenRead(path);
        return ReadVocab(stream, path);
    }

    private static Dictionary<string, int> ReadVocab(Stream stream, string path)
    {
        Dictionary<string, int>? vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{path}: not a JSON object of token -> id ({e.Message})");
        }
        if (vocab == null || vocab.Count == 0) throw new InvalidInputException($"{path}: the vocabulary is empty");
        if (vocab.Values.Any(id => id < 0)) throw new InvalidInputException($"{path}: token ids must not be negative");
        return vocab;
    }

    private static Dictionary<(string, string), int> ReadMerges(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer merges not found: {path}", path);
        using var reader = new StreamReader(path);
        return ReadMerges(reader, path);
    }

    private static Dictionary<(string, string), int> ReadMerges(TextReader reader, string path)
    {
        var ranks = new Dictionary<(string, string), int>();
        int lineNo = 0, rank = 0;
        for (var line = reader.ReadLine(); line != null; line = reader.ReadLine())
        {
            lineNo++;
            if (lineNo == 1 && line.StartsWith("#version", StringComparison.Ordinal)) continue;
            if (line.Length == 0) continue;
            if (rank == MaxMerges) break;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new InvalidInputException($"{path}:{lineNo}: expected two symbols separated by one space, got '{line}'");
            // Like Python's dict(zip(merges, range(...))), a repeated pair keeps its last rank.
            ranks[(parts[0], parts[1])] = rank++;
        }
        if (ranks.Count == 0) throw new InvalidInputException($"{path}: no merges");
        return ranks;
    }

    /// <summary>What tokenizer_config.json and special_tokens_map.json may set; defaults are CLIP's.</summary>
    private sealed record TokenizerSettings(string Bos, string Eos, string Pad, string Unk, int ModelMaxLength, bool LowerCase)
    {
        public static readonly TokenizerSettings Default = new("<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", 77, true);

        /// <summary>Overrides the settings the JSON file at <paramref name="path"/> names; a missing file changes nothing.</summary>
        public TokenizerSettings Apply(string path)
        {
            if (!File.Exists(path)) return this;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
            catch (JsonException e) { throw new InvalidInputException($"{path}: malformed JSON ({e.Message})"); }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new InvalidInputException($"{path}: expected a JSON object");
                return this with
                {
                    Bos = Token(root, "bos_token", path) ?? Bos,
                    Eos = Token(root, "eos_token", path) ?? Eos,
                    Pad = Token(root, "pad_token", path) ?? Pad,
                    Unk = Token(root, "unk_token", path) ?? Unk,
                    ModelMaxLength = MaxLength(root, path) ?? ModelMaxLength,
                    LowerCase = root.TryGetProperty("do_lower_case", out var lc) && lc.ValueKind is JsonValueKind.True or JsonValueKind.False
                        ? lc.GetBoolean() : LowerCase,
                };
            }
        }

        // A token is either "text" or an AddedToken object {"content": "text", ...}.
        private static string? Token(JsonElement root, string name, string path)
        {
            if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString();
            if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                return c.GetString();
            throw new InvalidInputException($"{path}: {name} must be a string or an object with a string \"content\"");
        }

        // Some configs store a huge sentinel (1e30) for "no limit"; only a usable int is taken.
        private static int? MaxLength(JsonElement root, string path)
        {
            if (!root.TryGetProperty("model_max_length", out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number) throw new InvalidInputException($"{path}: model_max_length must be a number");
            double d = v.GetDouble();
            return d >= 2 && d <= int.MaxValue ? (int)d : null;
        }
    }

    /// <summary>GPT-2's reversible byte &lt;-&gt; printable char map that byte-level BPE vocabularies are written in.</summary>
    private static class ByteLevel
    {
        private static readonly char[] ByteToChar = BuildTable();
        private static readonly Dictionary<char, byte> CharToByte =
            Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

        // Printable Latin-1 bytes stand for themselves; the other 68 bytes take U+0100.. in byte order.
        private static char[] BuildTable()
        {
            var table = new char[256];
            int next = 256;
            for (int b = 0; b < 256; b++)
                table[b] = b is >= '!' and <= '~' or >= '¡' and <= '¬' or >= '®' and <= 'ÿ' ? (char)b : (char)next++;
            return table;
        }

        public static string Encode(string word)
        {
            var bytes = Encoding.UTF8.GetBytes(word);
            return string.Create(bytes.Length, bytes, (span, b) =>
            {
                for (int i = 0; i < b.Length; i++) span[i] = ByteToChar[b[i]];
            });
        }

        public static bool TryDecode(char c, out byte b) => CharToByte.TryGetValue(c, out b);
    }
}
