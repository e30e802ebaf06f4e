// KernelBench's case selection (comma-separated filter) and rounds: which cases run, in which order, in which round.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Bench;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)] // RunAll sets Par.Threads while it runs
public class KernelBenchTests
{
    [Fact]
    public void RunAll_TwoFiltersTwoRounds_RunsEachSelectedCaseOncePerRoundInOrder()
    {
        int threads = Par.Threads;
        var results = new List<BenchResult>();
        KernelBench.RunAll(1, 1, results.Add, "gemm 512, GROUPNORM", rounds: 2);
        Assert.Equal(["gemm 512", "groupnorm", "gemm 512", "groupnorm"], results.Select(r => r.Name).ToArray());
        Assert.Equal([1, 1, 2, 2], results.Select(r => r.Round).ToArray());
        Assert.All(results, r => Assert.True(r.MedianSeconds > 0 && r.Rate > 0, $"{r.Name}: median {r.MedianSeconds} s, rate {r.Rate}"));
        Assert.Equal(threads, Par.Threads);
    }

    [Fact]
    public void CaseNames_Filters_SelectWhatRunAllRuns()
    {
        var all = KernelBench.CaseNames();
        Assert.Contains("groupnorm", all);
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Equal(["gemm 512", "groupnorm"], KernelBench.CaseNames("gemm 512, GROUPNORM"));
        Assert.Empty(KernelBench.CaseNames("no such case"));
        Assert.Empty(KernelBench.CaseNames(" , "));
    }

    [Fact]
    public void RunAll_ZeroRounds_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelBench.RunAll(1, 1, _ => { }, "gemm 512", rounds: 0));
    }
}
