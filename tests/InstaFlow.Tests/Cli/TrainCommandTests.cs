// `instaflow train` argument errors that come before any data is read: one line, exit code 2.
namespace InstaFlow.Tests.Cli;

public class TrainCommandTests
{
    [Fact]
    public void TrainDistill_MissingLpipsWeights_OneLineErrorNamesTheFile() =>
        CliRunner.AssertUserError(["train", "distill", "--data", "d", "--out", "o", "--model", "m", "--pairs", "p", "--lpips", "no-such-vgg.safetensors", "lin.safetensors"],
            "no-such-vgg.safetensors", "LPIPS weights file not found");

    [Fact]
    public void TrainVae_DecayBeyondTheRun_OneLineErrorNamesTheOption() =>
        CliRunner.AssertUserError(["train", "vae", "--data", "d", "--out", "o", "--steps", "10", "--decay-from", "20"], "--decay-from", "--steps");

    [Fact]
    public void TrainVae_EmaOfOne_OneLineErrorNamesTheOption() =>
        CliRunner.AssertUserError(["train", "vae", "--data", "d", "--out", "o", "--ema", "1"], "--ema");

    [Theory]
    [InlineData("flow", "--decay-from", "30", "--decay-from", "--steps")]
    [InlineData("reflow", "--min-lr", "1e-5", "--min-lr", "--decay-from")]
    [InlineData("distill", "--min-lr", "1", "--min-lr", "--lr")]
    public void TrainStage_BadDecay_OneLineErrorNamesTheOption(string stage, string option, string value, string fragment1, string fragment2)
    {
        string[] stageArgs = stage == "flow" ? ["--vae", "v", "--tokenizer", "t"] : ["--model", "m", "--pairs", "p"];
        string[] decay = option == "--min-lr" && stage == "distill" ? ["--decay-from", "5"] : [];
        CliRunner.AssertUserError(["train", stage, "--data", "d", "--out", "o", "--steps", "20", .. stageArgs, .. decay, option, value], fragment1, fragment2);
    }

    /// <summary>A tiny Twemoji-like dataset and a 1-step VAE under dir; then runs `train flow` on them with extra options.</summary>
    private static string TinyFlow(string dir, string name, params string[] extra) => TinyFlowRun(dir, name, extra).Dir;

    private static (string Dir, string Out) TinyFlowRun(string dir, string name, params string[] extra)
    {
        var data = Path.Combine(dir, "data");
        var vae = Path.Combine(dir, "vae");
        if (!Directory.Exists(data))
        {
            Training.TinyTwemoji.Write(data);
            var (vc, _, verr) = CliRunner.Run("train", "vae", "--data", data, "--out", vae, "--steps", "1", "--batch", "2", "--channels", "8,8", "--groups", "4", "--checkpoint-every", "0");
            Assert.True(vc == 0, verr);
        }
        var flow = Path.Combine(dir, name);
        var (code, stdout, err) = CliRunner.Run(["train", "flow", "--data", data, "--vae", Path.Combine(vae, "vae"), "--tokenizer", Path.Combine(TestUtil.Fixtures, "tiny-sd15", "tokenizer"),
            "--out", flow, "--batch", "2", "--lr", "1e-3", "--channels", "8,8", "--text-hidden", "8", "--text-layers", "1", "--max-tokens", "8",
            "--checkpoint-every", "0", "--seed", "3", .. extra]);
        Assert.True(code == 0, err);
        return (flow, stdout);
    }

    [Fact]
    public void TrainFlow_RunAgainAtItsFinalStep_SaysNoStepWasTaken()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-flowagain-").FullName;
        try
        {
            Assert.Contains("final loss ", TinyFlowRun(dir, "flow", "--steps", "3").Out);
            var again = TinyFlowRun(dir, "flow", "--steps", "3").Out;
            Assert.Contains("no step taken (already at --steps)", again);
            Assert.DoesNotContain("NaN", again);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TrainFlow_EvalEvery_LogsTheHeldOutLossAndTrainsExactlyAsWithout()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-flowheldout-").FullName;
        try
        {
            var measured = TinyFlow(dir, "measured", "--steps", "10", "--eval-every", "5");
            var plain = TinyFlow(dir, "plain", "--steps", "10");
            var evals = File.ReadLines(Path.Combine(measured, "train_log.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
                .Where(e => e.TryGetProperty("eval", out _)).ToDictionary(e => e.GetProperty("step").GetInt64(), e => e.GetProperty("eval").GetProperty("heldout_loss").GetDouble());
            Assert.Equal([5L, 10L], evals.Keys.Order());
            Assert.All(evals.Values, v => Assert.True(double.IsFinite(v) && v > 0, $"held-out loss {v}"));
            // measuring draws nothing from the training generator and changes no weight: the same model comes out
            foreach (var file in new[] { "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
                Assert.True(File.ReadAllBytes(Path.Combine(measured, "model", file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(plain, "model", file))), $"{file} differs");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TrainFlow_DecayFrom_LogsTheCosineScheduleDownToTheFloor()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-flowdecay-").FullName;
        try
        {
            var flow = TinyFlow(dir, "flow", "--steps", "30", "--decay-from", "10", "--min-lr", "1e-4");
            var lr = File.ReadLines(Path.Combine(flow, "train_log.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
                .Where(e => e.TryGetProperty("lr", out _)).ToDictionary(e => e.GetProperty("step").GetInt64(), e => e.GetProperty("lr").GetSingle());
            // The stage warms up over min(100, --steps) = 30 steps; a logged step k used the rate of step index k - 1.
            // Step 10: still warming up, 1e-3 * 10/30. Step 30: cosine at 19/20 of the way from 1e-3 to 1e-4.
            Assert.Equal(1e-3f * 10 / 30, lr[10], 6);
            Assert.Equal(1e-4f + 9e-4f * 0.5f * (1 + MathF.Cos(MathF.PI * 19 / 20)), lr[30], 6);
            using var result = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(flow, "result.json")));
            Assert.Equal(10, result.RootElement.GetProperty("decay_from").GetInt32());
            Assert.Equal(1e-4f, result.RootElement.GetProperty("min_learning_rate").GetSingle(), 6);
        }
        finally { Directory.Delete(dir, true); }
    }
}
