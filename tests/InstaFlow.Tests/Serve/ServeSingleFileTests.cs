// `serve` with a single-file checkpoint and InstaFlow's fine-tune merge: it starts, and /api/model names the file,
// its components and what was merged.
using System.Text.Json;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Serve;

public sealed class ServeSingleFileTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "single_file");

    [Fact]
    public async Task Serve_LdmFileWithMerge_ApiModelNamesFileAndMerge()
    {
        var file = Path.Combine(Dir, "ldm.safetensors");
        var mini = Path.Combine(Dir, "mini-sd15");
        await using var run = await RunningServer.StartAsync(o => o with
        {
            ModelDir = file, Source = new ModelSource(file) { ConfigDir = mini },
            Additions = new ModelAdditions { MergeFinetune = Path.Combine(Dir, "finetune"), DwFile = Path.Combine(Dir, "dW.pt"), MergeAlpha = 0.5f },
        });
        using var doc = JsonDocument.Parse(await run.Client.GetStringAsync("api/model"));
        var text = doc.RootElement.GetRawText();
        Assert.Contains("ldm.safetensors", text);
        Assert.Contains("dW dW.pt x0.5", text);
        Assert.Contains("UNet2DConditionModel", text);
    }
}
