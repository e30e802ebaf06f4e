// ProgressDisplay with a test's writers: plain lines on CliIO.Err (the first, the last and few between), stages,
// training reports and log lines, and the line format with its ETA.
using InstaFlow.Cli;
using InstaFlow.Training;

namespace InstaFlow.Tests.Cli;

public class ProgressDisplayTests
{
    /// <summary>Runs work with CliIO on fresh writers (as Cli.Run does) and returns what it printed on stderr, as lines.</summary>
    private static string[] ErrLines(Action<ProgressDisplay> work)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        CliIO.Use(o, e);
        ProgressDisplay.Run("job", work);
        Assert.Equal("", o.ToString());
        return e.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    [Fact]
    public void Run_ManyQuickReports_PrintsTheFirstAndTheLastOnly()
    {
        var lines = ErrLines(p => { for (int i = 1; i <= 1000; i++) p.Report(new JobProgress(i, 1000, $"item {i}")); });
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("job: 1/1000 (0%), item 1, ", lines[0]);
        Assert.StartsWith("job: 1000/1000 (100%), item 1000, ", lines[1]);
        Assert.DoesNotContain("left", lines[1]);
    }

    [Fact]
    public void Run_Stages_EachStagePrintsItsOwnFirstAndLastLines()
    {
        var lines = ErrLines(p =>
        {
            foreach (var stage in new[] { "real", "generated" })
                for (int i = 1; i <= 3; i++) p.Stage(stage).Report(new JobProgress(i, 3));
        });
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("job real: 1/3", lines[0]);
        Assert.StartsWith("job real: 3/3", lines[1]);
        Assert.StartsWith("job generated: 1/3", lines[2]);
        Assert.StartsWith("job generated: 3/3", lines[3]);
    }

    [Fact]
    public void Run_TrainingReportsAndLogLines_PrintStepLossAndTheLine()
    {
        var lines = ErrLines(p =>
        {
            p.Log("resumed at step 1");
            p.Training.Report(new TrainingProgress(1, 4, 0.5f, 3e-5f, TimeSpan.FromSeconds(1)));
            p.Training.Report(new TrainingProgress(2, 4, 0.5f, 1e-3f, TimeSpan.FromSeconds(1)));
            p.Training.Report(new TrainingProgress(4, 4, 0.25f, 1e-3f, TimeSpan.FromSeconds(2)));
        });
        Assert.Equal("resumed at step 1", lines[0]);
        Assert.StartsWith("job: 1/4 (25%), loss 0.5000, lr 3e-05, ", lines[1]);
        Assert.StartsWith("job: 4/4 (100%), loss 0.2500, lr 0.001, ", lines[2]); // step 2 falls inside the interval
        Assert.Equal(3, lines.Length);
    }

    [Fact]
    public void Run_WorkResult_IsReturned() =>
        Assert.Equal(42, ProgressDisplay.Run("job", _ => 42));

    [Theory]
    [InlineData(0, 10, 0.0, "flow: 0/10 (0%), 0.0 s")]
    [InlineData(25, 100, 10.0, "flow: 25/100 (25%), loss 0.1, 10.0 s, 30 s left")]
    [InlineData(1, 100, 120.0, "flow: 1/100 (1%), loss 0.1, 120.0 s, 3h 18m left")]
    [InlineData(5, 0, 1.5, "flow: 5/0, loss 0.1, 1.5 s")]
    [InlineData(1, 100, 0.5, "flow: 1/100 (1%), loss 0.1, 0.5 s")]
    public void PlainLine_Counts_FormatsPercentElapsedAndEta(long done, long total, double seconds, string expected) =>
        Assert.Equal(expected, ProgressDisplay.PlainLine("flow", new JobProgress(done, total, done == 0 ? null : "loss 0.1"), TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void PlainLine_ResumedAtStep2000_EtaFromStepsDoneSinceTheFirstReport()
    {
        // Resumed at 2000 of 5000 (first report at 2 s), 10 steps in the next 10 s: 2990 left at 1 step/s, not "16 s".
        var line = ProgressDisplay.PlainLine("vae", new JobProgress(2010, 5000), TimeSpan.FromSeconds(12), (2000, TimeSpan.FromSeconds(2)));
        Assert.Equal("vae: 2010/5000 (40%), 12.0 s, 49m 50s left", line);
    }
}
