// The pipeline stops between UNet steps once its token is cancelled (what the server relies on to drop the work
// of a client that disconnected), and the plain Generate(request) overload still runs to the end.
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Serve;

public sealed class PipelineCancellationTests
{
    [Fact]
    public void Generate_CancelledDuringSteps_StopsBeforeTheNextStep()
    {
        using var model = SdComponents.Load(RunningServer.TinyModel);
        using var cancel = new CancellationTokenSource();
        int stepsRun = 0;
        var pipe = new RectifiedFlowPipeline(model)
        {
            Progress = p => { stepsRun = p.Step + 1; if (p.Step == 0) cancel.Cancel(); },
        };
        var req = new GenerationRequest { Prompts = ["a cat"], Steps = 4 };
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(req, cancel.Token));
        Assert.Equal(1, stepsRun);

        pipe.Progress = null;
        var res = pipe.Generate(req);
        res.FinalLatents.Dispose();
        Assert.Single(res.ImagesHwc);
    }

    [Fact]
    public void Generate_CancelledInsideTheUnet_StopsBeforeTheNextBlock()
    {
        using var model = SdComponents.Load(RunningServer.TinyModel);
        using var cancel = new CancellationTokenSource();
        var stages = new List<string>();
        // The networks' own hooks see every block (the pipeline's sees only stage outputs).
        model.Unet.Hook = (name, _) => { stages.Add(name); if (name == "down_blocks.0.0") cancel.Cancel(); };
        model.Vae.Hook = (name, _) => stages.Add(name);
        var pipe = new RectifiedFlowPipeline(model);
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(new GenerationRequest { Prompts = ["a cat"], Steps = 1 }, cancel.Token));
        Assert.Contains("down_blocks.0.0", stages);
        Assert.DoesNotContain("mid_block", stages);
        Assert.DoesNotContain(stages, s => s.StartsWith("decoder.", StringComparison.Ordinal));

        // The token is the run's only: the same thread's next run, uncancelled, goes to the end.
        model.Unet.Hook = null;
        model.Vae.Hook = null;
        pipe.Generate(new GenerationRequest { Prompts = ["a cat"], Steps = 1 }).FinalLatents.Dispose();
    }

    [Fact]
    public void Generate_CancelledInsideTheVaeDecoder_StopsBeforeTheNextBlock()
    {
        using var model = SdComponents.Load(RunningServer.TinyModel);
        using var cancel = new CancellationTokenSource();
        var stages = new List<string>();
        model.Vae.Hook = (name, _) => { stages.Add(name); if (name == "decoder.mid_block") cancel.Cancel(); };
        var pipe = new RectifiedFlowPipeline(model);
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(new GenerationRequest { Prompts = ["a cat"], Steps = 1 }, cancel.Token));
        Assert.Contains("decoder.mid_block", stages);
        Assert.DoesNotContain(stages, s => s.StartsWith("decoder.up_blocks", StringComparison.Ordinal));
    }

    [Fact]
    public void Generate_AlreadyCancelled_DoesNoWork()
    {
        using var model = SdComponents.Load(RunningServer.TinyModel);
        var stages = new List<string>();
        var pipe = new RectifiedFlowPipeline(model) { Hook = (name, _) => stages.Add(name) };
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(new GenerationRequest { Prompts = ["a cat"] }, new CancellationToken(canceled: true)));
        Assert.Empty(stages);
    }
}
