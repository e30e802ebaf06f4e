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
    public void Generate_AlreadyCancelled_DoesNoWork()
    {
        using var model = SdComponents.Load(RunningServer.TinyModel);
        var stages = new List<string>();
        var pipe = new RectifiedFlowPipeline(model) { Hook = (name, _) => stages.Add(name) };
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(new GenerationRequest { Prompts = ["a cat"] }, new CancellationToken(canceled: true)));
        Assert.Empty(stages);
    }
}
