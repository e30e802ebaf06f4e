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
}
