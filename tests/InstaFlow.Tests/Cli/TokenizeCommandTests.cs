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
        var original = Console.Out;
        var captured = new StringWriter();
        Console.SetOut(captured);
        try
        {
            int code = new RootCommand { TokenizeCommand.Create() }.Parse(args)
                .Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            Assert.Equal(0, code);
        }
        finally
        {
            Console.SetOut(original);
        }
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
    public void Tokenize_NeitherTextNorJsonl_ThrowsUserException() =>
        Assert.Throws<UserException>(() => Run("tokenize", "--model", ModelDir));

    [Fact]
    public void Tokenize_FolderWithoutTokenizer_ThrowsFileNotFoundNamingVocab()
    {
        var dir = Directory.CreateTempSubdirectory("no-tok-").FullName;
        try
        {
            var e = Assert.Throws<FileNotFoundException>(() => Run("tokenize", "--model", dir, "a cat"));
            Assert.Contains("vocab.json", e.Message);
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void Tokenize_JsonlLineWithoutPrompt_ThrowsInvalidDataNamingLine()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, ["{\"prompt\": \"a cat\"}", "{\"text\": \"a dog\"}"]);
            var e = Assert.Throws<InvalidDataException>(() => Run("tokenize", "--model", ModelDir, "--jsonl", file));
            Assert.Contains($"{file}:2", e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
