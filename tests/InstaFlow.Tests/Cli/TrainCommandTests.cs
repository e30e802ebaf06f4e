// `instaflow train` argument errors that come before any data is read: one line, exit code 2.
namespace InstaFlow.Tests.Cli;

public class TrainCommandTests
{
    [Fact]
    public void TrainDistill_MissingLpipsWeights_OneLineErrorNamesTheFile() =>
        CliRunner.AssertUserError(["train", "distill", "--data", "d", "--out", "o", "--model", "m", "--pairs", "p", "--lpips", "no-such-vgg.safetensors", "lin.safetensors"],
            "no-such-vgg.safetensors", "LPIPS weights file not found");
}
