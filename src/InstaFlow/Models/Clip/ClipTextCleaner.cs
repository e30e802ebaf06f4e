// The text cleanup that Hugging Face's CLIPTokenizer applies when ftfy is absent (its BasicTokenizer with
// strip_accents=False, do_split_on_punc=False): drop control chars, space out CJK ideographs, NFC, split, lower-case.
using System.Globalization;
using System.Text;

namespace InstaFlow.Models.Clip;

internal static class ClipTextCleaner
{
    /// <summary>Cleans <paramref name="text"/> and returns its words joined by single spaces.</summary>
    public static string Clean(string text, bool lowerCase)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            int cp = rune.Value;
            // A lone surrogate comes out of EnumerateRunes as U+FFFD; Python sees category Cs. Both are dropped.
            if (cp == 0 || cp == 0xFFFD || IsControl(rune)) continue;
            if (IsWhitespace(rune)) sb.Append(' ');
            else if (IsCjkIdeograph(cp)) sb.Append(' ').Append(rune.ToString()).Append(' ');
            else sb.Append(rune.ToString());
        }
        var normalized = sb.ToString().Normalize(System.Text.NormalizationForm.FormC);
        // Python's str.split() splits on every Unicode whitespace char; after the cleanup above only ' ' and the
        // line/paragraph separators (Zl, Zp) are left, and char.IsWhiteSpace covers both.
        var words = normalized.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (lowerCase)
            for (int i = 0; i < words.Length; i++) words[i] = PythonLower(words[i]);
        return string.Join(' ', words);
    }

    // Python's _is_control: \t \n \r count as whitespace; every other category starting with C (Cc, Cf, Cs, Co, Cn)
    // is removed, which deletes ZWJ, ZWSP, soft hyphen, BOM, private-use and unassigned code points.
    private static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    private static bool IsWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    // The ranges BasicTokenizer treats as Chinese characters: CJK Unified Ideographs and extensions, compatibility
    // ideographs. Kana and Hangul are deliberately not included.
    private static bool IsCjkIdeograph(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
            or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF
            or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>
    /// Python's str.lower(): .NET's simple case mapping plus the two rules Python adds from SpecialCasing.txt,
    /// 'İ' -> "i̇" and capital sigma -> 'ς' at the end of a word.
    /// </summary>
    internal static string PythonLower(string word)
    {
        var sb = new StringBuilder(word.Length);
        int i = 0;
        foreach (var rune in word.EnumerateRunes())
        {
            if (rune.Value == 0x130) sb.Append("i\u0307");
            else if (rune.Value == 0x3A3) sb.Append(IsFinalSigma(word, i) ? 'ς' : 'σ');
            else sb.Append(Rune.ToLowerInvariant(rune).ToString());
            i += rune.Utf16SequenceLength;
        }
        return sb.ToString();
    }

    // Unicode's Final_Sigma condition: a cased letter before (skipping case-ignorable chars) and none after.
    private static bool IsFinalSigma(string s, int at)
    {
        bool casedBefore = false;
        for (int j = at; j > 0;)
        {
            var r = RuneBefore(s, j);
            j -= r.Utf16SequenceLength;
            if (IsCaseIgnorable(r)) continue;
            casedBefore = IsCased(r);
            break;
        }
        if (!casedBefore) return false;
        for (int k = at + 1; k < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(k), out var r, out int n);
            k += n;
            if (IsCaseIgnorable(r)) continue;
            return !IsCased(r);
        }
        return true;
    }

    private static Rune RuneBefore(string s, int end)
    {
        Rune.DecodeLastFromUtf16(s.AsSpan(0, end), out var r, out _);
        return r;
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    // Case_Ignorable: marks, format chars, modifier letters and symbols, and the word-internal punctuation of UAX #29.
    private static bool IsCaseIgnorable(Rune r) =>
        r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;
}
