// `instaflow tokenize` through System.CommandLine: JSON output for a prompt and for a JSONL file, and its errors.
using System.CommandLine;
using System.Text.Json;
using InstaFlow.Cli;
using InstaFlow.Models.Clip;
using InstaFlow.Tests.Models;

namespace InstaFlow.Tests.Cli;

public class TokenizeCommandTests
{
    private static string ModelDir => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    private static string Run(params string[] args)
    {
        var captured = new StringWriter();
        var err = new StringWriter();
        int code = InstaFlow.Cli.Cli.Run(args, captured, err);
        Assert.True(code == 0, $"exit code {code}: {err}");
        return captured.ToString();
    }

    [Fact]
    public void Tokenize_TextWithDiffusersFolder_PrintsPadded77IdsOnOneLine()
    {
        var output = Run("tokenize", "--model", ModelDir, "a photo of a cat");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var ids = JsonSerializer.Deserialize<int[]>(lines[0])!;
        Assert.Equal(77, ids.Length);
        Assert.Equal(new[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, ids[..7]);
        Assert.All(ids[7..], id => Assert.Equal(49407, id));
    }

    [Fact]
    public void Tokenize_JsonlWithTokenizerFolder_PrintsPromptAndIdsPerLine()
    {
        var prompts = new[] { "line one\nline two", "tabs\tbetween", "a cute cat \U0001F431" };
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, prompts.Select(p => JsonSerializer.Serialize(new { prompt = p })).Append(""));
            var lines = Run("tokenize", "--model", ClipTokenizerTests.TokenizerDir, "--jsonl", file)
                .Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var tok = ClipTokenizer.FromDirectory(ClipTokenizerTests.TokenizerDir);
            Assert.Equal(prompts.Length, lines.Length);
            for (int i = 0; i < prompts.Length; i++)
            {
                using var doc = JsonDocument.Parse(lines[i]);
                Assert.Equal(prompts[i], doc.RootElement.GetProperty("prompt").GetString());
                Assert.Equal(tok.Tokenize(prompts[i]).Ids, doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Tokenize_NeitherTextNorJsonl_PrintsOneLineError() =>
        CliRunner.AssertUserError(new[] { "tokenize", "--model", ModelDir }, "exactly one of");

    [Fact]
    public void Tokenize_FolderWithoutTokenizer_PrintsErrorNamingVocab()
    {
        var dir = Directory.CreateTempSubdirectory("no-tok-").FullName;
        try
        {
            CliRunner.AssertUserError(new[] { "tokenize", "--model", dir, "a cat" }, "vocab.json");
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void Tokenize_JsonlLineWithoutPrompt_PrintsErrorNamingLine()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, ["{\"prompt\": \"a cat\"}", "{\"text\": \"a dog\"}"]);
            CliRunner.AssertUserError(new[] { "tokenize", "--model", ModelDir, "--jsonl", file }, $"{file}:2");
        }
        finally
        {
            File.Delete(file);
        }
    }
}
