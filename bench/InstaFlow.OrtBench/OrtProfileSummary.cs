// Sums an ONNX Runtime profile (the Chrome-trace JSON that SessionOptions.EnableProfiling writes) by operator type for
// one run, so its time split can be read beside our own per-kernel profile. Only BCL types: the tests compile it.
using System.Text.Json;

namespace InstaFlow.OrtBench;

/// <summary>One operator type's share of a run: nodes executed, their summed kernel time.</summary>
public sealed record OrtOpTime(string OpType, int Nodes, double Seconds);

public static class OrtProfileSummary
{
    /// <summary>
    /// The node kernel times of the last "model_run" in the profile, summed per op_name, most time first. Each node
    /// writes a "*_kernel_time" event (category "Node") with its duration in microseconds and its op_name in args.
    /// </summary>
    public static IReadOnlyList<OrtOpTime> LastRun(string profileFile)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(profileFile)); }
        catch (JsonException e) { throw new BenchInputException($"{profileFile}: not an ONNX Runtime profile ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new BenchInputException($"{profileFile}: expected a JSON array of trace events");
            var events = doc.RootElement.EnumerateArray().ToList();
            var runs = events.Where(e => Str(e, "cat") == "Session" && Str(e, "name") == "model_run").ToList();
            if (runs.Count == 0) throw new BenchInputException($"{profileFile}: no model_run event; the session ran no inference while profiling");
            long start = runs[^1].GetProperty("ts").GetInt64(), end = start + runs[^1].GetProperty("dur").GetInt64();
            var sums = new Dictionary<string, (int Nodes, long Micros)>();
            foreach (var e in events)
            {
                if (Str(e, "cat") != "Node" || !(Str(e, "name")?.EndsWith("_kernel_time", StringComparison.Ordinal) ?? false)) continue;
                long ts = e.GetProperty("ts").GetInt64();
                if (ts < start || ts > end) continue;
                string op = e.TryGetProperty("args", out var a) && Str(a, "op_name") is { } name ? name : "?";
                sums.TryGetValue(op, out var s);
                sums[op] = (s.Nodes + 1, s.Micros + e.GetProperty("dur").GetInt64());
            }
            return sums.Select(kv => new OrtOpTime(kv.Key, kv.Value.Nodes, kv.Value.Micros / 1e6)).OrderByDescending(t => t.Seconds).ToList();
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
