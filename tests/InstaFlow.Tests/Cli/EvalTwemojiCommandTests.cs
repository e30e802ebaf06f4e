// `instaflow eval twemoji` with one model folder (--distilled only) on a tiny dataset and an untrained tiny model: the
// table and JSON carry the retrieval columns and their reference values; no folder at all, or a missing one, is a
// one-line error naming the option.
using System.Text.Json;
using InstaFlow.Evaluation;
using InstaFlow.Models;
using InstaFlow.Models.Vae;
using InstaFlow.Tests.Training;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Tests.Cli;

public sealed class EvalTwemojiCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("eval-twemoji-").FullName;
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private (string Data, string Classifier, string Model) Setup()
    {
        var data = TinyTwemoji.Write(Path.Combine(_tmp, "data"), count: 16);
        var clf = new TwemojiClassifier([8, 8], ["even", "odd"]);
        clf.InitDefault(1);
        var clfDir = Path.Combine(_tmp, "clf");
        Directory.CreateDirectory(clfDir);
        clf.Save(clfDir);
        var tokenizerDir = Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer");
        var vaeCfg = new AutoencoderKLConfig { BlockOutChannels = [8, 8], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = TinyTwemoji.Size };
        var arch = new FlowArchitecture { TextHidden = 16, TextLayers = 1, TextHeads = 2, MaxTokens = 8, UnetChannels = [16, 16], UnetHeads = 2, NormGroups = 4 };
        var net = TextToImageTraining.NewNetwork(arch, vaeCfg, InstaFlow.Models.Clip.ClipTokenizer.FromDirectory(tokenizerDir).VocabSize, 3);
        var vae = new AutoencoderKL(vaeCfg);
        vae.InitDefault(2);
        var model = Path.Combine(_tmp, "model");
        DiffusersWriter.WritePipeline(model, net.Text, net.Unet, vae, tokenizerDir, defaults: (1, 0f));
        return (data, clfDir, model);
    }

    [Fact]
    public void EvalTwemoji_DistilledOnly_PrintsAndWritesRetrieval()
    {
        var (data, clf, model) = Setup();
        var json = Path.Combine(_tmp, "eval.json");
        var (code, stdout, err) = CliRunner.Run("eval", "twemoji", "--data", data, "--classifier", clf, "--distilled", model, "--json", json);
        Assert.True(code == 0, err);
        Assert.Contains("| retrieval top-1 | top-10 | median rank |", stdout);
        Assert.Contains("| real training images | - | off |", stdout);
        Assert.DoesNotContain("1-RF", stdout);
        Assert.DoesNotContain("straightness", stdout);
        Assert.Contains("among all 16 dataset images", stdout);
        Assert.Contains("one image end to end", stdout);
        var row = stdout.Split('\n').Single(l => l.StartsWith("| 2-RF distilled |", StringComparison.Ordinal)).Split('|', StringSplitOptions.TrimEntries);
        double median = double.Parse(row[8], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(median, 1, 16);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.Equal(4, root.GetProperty("prompts").GetInt32());
        var rows = root.GetProperty("rows").EnumerateArray().ToArray();
        Assert.Equal(2, rows.Length);
        Assert.Equal(JsonValueKind.Null, rows[0].GetProperty("retrieval_top1").ValueKind);
        Assert.Equal(median, rows[1].GetProperty("retrieval_median_rank").GetDouble());
        // one rank per caption, in the order of "captions" (held-out items 0, 4, 8, 12)
        var ranks = rows[1].GetProperty("retrieval_ranks").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(["red thing 0", "red thing 4", "red thing 8", "red thing 12"], root.GetProperty("captions").EnumerateArray().Select(e => e.GetString()));
        Assert.All(ranks, k => Assert.InRange(k, 1, 16));
        Assert.Equal(ranks.Count(k => k <= 10) / 4.0, rows[1].GetProperty("retrieval_top10").GetDouble());
        double top1 = rows[1].GetProperty("retrieval_top1").GetDouble(), top10 = rows[1].GetProperty("retrieval_top10").GetDouble();
        // 16 candidates: every true image is in the top 10 or not, and top-1 can never beat top-10
        Assert.True(top1 <= top10 && top10 <= 1, $"top-1 {top1}, top-10 {top10}");
        var r = root.GetProperty("retrieval");
        Assert.Equal(16, r.GetProperty("candidates").GetInt32());
        Assert.Equal(1, r.GetProperty("real_image").GetProperty("median_rank").GetDouble());
        Assert.Equal(8.5, r.GetProperty("random_image").GetProperty("median_rank").GetDouble());
        Assert.Contains("16x16", r.GetProperty("distance").GetString());
        Assert.Empty(root.GetProperty("straightness").EnumerateObject());
        Assert.True(root.GetProperty("one_image_seconds").GetDouble() > 0);
    }

    [Fact]
    public void EvalTwemoji_NoModelFolder_OneLineErrorNamesTheOptions() =>
        CliRunner.AssertUserError(["eval", "twemoji", "--data", "d", "--classifier", "c"], "--1rf", "--2rf", "--distilled");

    [Fact]
    public void EvalTwemoji_MissingFolder_OneLineErrorNamesTheOption() =>
        CliRunner.AssertUserError(["eval", "twemoji", "--data", "d", "--classifier", "c", "--2rf", Path.Combine(_tmp, "no-such-model")], "--2rf", "no-such-model");

    [Fact]
    public void EvalTwemoji_NegativePromptCount_OneLineError() =>
        CliRunner.AssertUserError(["eval", "twemoji", "--data", "d", "--classifier", "c", "--distilled", "m", "--prompts", "-1"], "--prompts");
}
