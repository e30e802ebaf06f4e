// The prompts list for triplet generation: UTF-8 text, one prompt per line; its sha256 pins the list in the manifest.
using System.Security.Cryptography;
using System.Text;

namespace InstaFlow.Training.Triplets;

public static class PromptsFile
{
    /// <summary>Reads the prompts (a final newline is allowed; CRLF is accepted); blank lines are errors naming the line.</summary>
    public static (string[] Prompts, string Sha256) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"prompts file not found: {path}", path);
        var bytes = File.ReadAllBytes(path);
        string text;
        try { text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new InvalidInputException($"{path}: not valid UTF-8"); }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var lines = text.Split('\n');
        int n = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        var prompts = new string[n];
        for (int i = 0; i < n; i++)
        {
            var p = lines[i].TrimEnd('\r');
            // An empty line would silently shift every later prompt index k mod P, so it is refused.
            if (p.Trim().Length == 0) throw new InvalidInputException($"{path}: line {i + 1} is empty (one prompt per line, no blank lines)");
            prompts[i] = p;
        }
        if (n == 0) throw new InvalidInputException($"{path}: no prompts");
        return (prompts, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }
}
