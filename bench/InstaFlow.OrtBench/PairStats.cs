// Summaries of the interleaved runs: medians and spreads of each engine's times, the per-pair ratio ours/ORT and its
// median, and the largest absolute difference between two outputs. Only BCL types (the tests compile this file too).
namespace InstaFlow.OrtBench;

public readonly record struct Spread(double Median, double Min, double Max)
{
    /// <summary>Median (the mean of the middle two for an even count), min and max; NaN for no samples.</summary>
    public static Spread Of(IReadOnlyList<double> xs)
    {
        if (xs.Count == 0) return new Spread(double.NaN, double.NaN, double.NaN);
        var s = xs.OrderBy(x => x).ToArray();
        int n = s.Length;
        double median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
        return new Spread(median, s[0], s[^1]);
    }
}

/// <summary>One stage's timed runs. Pairs ran back to back (ORT then ours), so each pair's ratio saw about the same load.</summary>
public sealed class StageTimes
{
    public List<double> Ort { get; } = new();
    public List<double> Ours { get; } = new();
    public List<double> OrtCpu { get; } = new();
    public List<double> OursCpu { get; } = new();

    /// <summary>ours / ORT for each complete pair: above 1 means our engine was slower in that pair.</summary>
    public IReadOnlyList<double> Ratios => Ort.Zip(Ours, (o, u) => u / o).ToList();
}

public static class Diff
{
    /// <summary>max |a - b| over all elements; NaN when either is missing or the lengths differ (nothing to compare).</summary>
    public static double MaxAbs(float[]? a, float[]? b)
    {
        if (a == null || b == null || a.Length != b.Length) return double.NaN;
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.NaN; // a NaN output must not hide behind a finite maximum
            if (d > m) m = d;
        }
        return m;
    }
}
