// Test attributes for code that needs a CPU feature: on a CPU without it the runner reports the test as skipped,
// with the reason, instead of the test returning early and passing.
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tests;

/// <summary>A fact skipped (and reported so) on a CPU without AVX2 and FMA, which the AVX2 micro-kernels need.</summary>
public sealed class Avx2FactAttribute : FactAttribute
{
    public Avx2FactAttribute()
    {
        if (!(Avx2.IsSupported && Fma.IsSupported)) Skip = "this CPU has no AVX2/FMA, so the AVX2 micro-kernels cannot run here";
    }
}
