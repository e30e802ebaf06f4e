// Runs a computation with 1 and then 2 threads and asserts every output is bitwise identical (Par's contract).
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

public static class ThreadDeterminism
{
    /// <summary>run returns named outputs; Par.Threads is restored afterwards. Use from [Collection(EngineSettings.Name)] tests.</summary>
    public static void AssertOneVsTwoIdentical(Func<(string name, float[] values)[]> run)
    {
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = run();
            Par.Threads = 2;
            var two = run();
            for (int i = 0; i < one.Length; i++)
                Assert.True(one[i].values.AsSpan().SequenceEqual(two[i].values),
                    $"{one[i].name} differs between 1 and 2 threads, max diff {TestUtil.MaxAbsDiff(one[i].values, two[i].values)}");
        }
        finally { Par.Threads = saved; }
    }
}
