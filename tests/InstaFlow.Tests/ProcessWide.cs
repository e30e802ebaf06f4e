// The collection of tests that measure the whole test process (its resident set, its response times) or wait on a
// browser with timeouts: they run alone, because xunit runs the other test classes in parallel and their memory and CPU
// would count against these bounds.
namespace InstaFlow.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWide
{
    public const string Name = "Process-wide measurements";
}
