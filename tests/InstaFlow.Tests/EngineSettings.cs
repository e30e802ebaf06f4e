// The collection of tests that change the engine's process-wide settings (Par.Threads, GemmKernels.Isa,
// Conv2dWinograd.Mode and the overrides): they run alone, because a test of another class running meanwhile would
// compute under those settings and its bitwise comparisons would fail at random (CI saw it in an inversion test).
namespace InstaFlow.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EngineSettings
{
    public const string Name = "Engine settings";
}
