// `instaflow tokenize --model DIR [TEXT] [--jsonl FILE]`: prints the padded-77 CLIP token ids of a prompt, or of
// every {"prompt": ...} line of a JSONL file, as JSON.
using System.CommandLine;
using System.Text.Json;
using InstaFlow.Models.Clip;

namespace InstaFlow.Cli;

public static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "a diffusers model folder (tokenizer in DIR/tokenizer) or the tokenizer folder itself",
            Required = true,
        };
        var jsonl = new Option<string?>("--jsonl") { Description = "a file with one JSON object {\"prompt\": ...} per line" };
        var text = new Argument<string?>("text") { Description = "the prompt", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("tokenize", "Print the CLIP token ids (padded to 77) of a prompt or of a JSONL file of prompts");
        cmd.Options.Add(model);
        cmd.Options.Add(jsonl);
        cmd.Arguments.Add(text);
        cmd.SetAction(parseResult =>
        {
            var prompt = parseResult.GetValue(text);
            var file = parseResult.GetValue(jsonl);
            if ((prompt == null) == (file == null)) throw new UserException("tokenize needs exactly one of a TEXT argument and --jsonl FILE");
            var tokenizer = ClipTokenizer.FromDirectory(ResolveTokenizerDir(parseResult.GetValue(model)!));
            if (prompt != null) CliIO.Out.WriteLine(JsonSerializer.Serialize(tokenizer.Tokenize(prompt).Ids));
            else TokenizeJsonl(tokenizer, file!);
            return 0;
        });
        return cmd;
    }

    private static string ResolveTokenizerDir(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"model folder not found: {dir}");
        var sub = Path.Combine(dir, "tokenizer");
        if (File.Exists(Path.Combine(sub, "vocab.json"))) return sub;
        if (File.Exists(Path.Combine(dir, "vocab.json"))) return dir;
        throw new FileNotFoundException($"no tokenizer in {dir}: expected {Path.Combine(sub, "vocab.json")} or {Path.Combine(dir, "vocab.json")}");
    }

    private static void TokenizeJsonl(ClipTokenizer tokenizer, string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"prompt file not found: {path}", path);
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var prompt = ReadPrompt(line, $"{path}:{lineNo}");
            CliIO.Out.WriteLine(JsonSerializer.Serialize(new { prompt, ids = tokenizer.Tokenize(prompt).Ids }));
        }
    }

    private static string ReadPrompt(string line, string where)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("prompt", out var p)
                && p.ValueKind == JsonValueKind.String)
                return p.GetString()!;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: not valid JSON ({e.Message})");
        }
        throw new InvalidDataException($"{where}: expected a JSON object with a string \"prompt\"");
    }
}
