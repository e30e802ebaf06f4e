// Shared test helpers: seeded random tensors, max-difference assertions that print the difference, fixture paths.
using InstaFlow.Tensors;

namespace InstaFlow.Tests;

public static class TestUtil
{
    public static float[] RandomArray(int seed, long n, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    public static Tensor Random(int seed, params int[] shape) => Tensor.FromArray(RandomArray(seed, ShapeUtil.Numel(shape)), shape);

    public static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        float m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float d = MathF.Abs(a[i] - b[i]);
            if (float.IsNaN(d)) return float.NaN;
            if (d > m) m = d;
        }
        return m;
    }

    /// <summary>Asserts max |a - b| &lt;= atol + rtol * max|b|, printing the max difference on failure.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float atol, float rtol = 0, string what = "")
    {
        float max = 0; int at = -1;
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float d = MathF.Abs(expected[i] - actual[i]);
            float tol = atol + rtol * MathF.Abs(expected[i]);
            if (float.IsNaN(d) || d > tol)
            {
                if (float.IsNaN(d) || d > max) { max = float.IsNaN(d) ? float.NaN : d; at = i; }
            }
        }
        if (at >= 0)
            Assert.Fail($"{what}: max abs diff {max} at index {at} (expected {expected[at]}, got {actual[at]}), tolerance atol={atol} rtol={rtol}");
    }

    public static void AssertClose(Tensor expected, Tensor actual, float atol, float rtol = 0, string what = "")
    {
        Assert.True(ShapeUtil.SameShape(expected.Shape, actual.Shape), $"{what}: shape {expected.Describe()} vs {actual.Describe()}");
        AssertClose(expected.Span, actual.Span, atol, rtol, what);
    }

    /// <summary>The golden fixtures from the Python reference, beside the repository.</summary>
    public static string Fixtures
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "InstaFlow.slnx"))) dir = dir.Parent;
            if (dir == null) throw new InvalidOperationException("cannot find the repository root (InstaFlow.slnx) above " + AppContext.BaseDirectory);
            var p = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures"));
            if (!Directory.Exists(p)) throw new InvalidOperationException($"golden fixtures missing: expected {p} (../shared/fixtures from the repo root)");
            return p;
        }
    }

    public static string RepoRoot => FindRoot();
    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "InstaFlow.slnx"))) dir = dir.Parent;
        return dir!.FullName;
    }
}
