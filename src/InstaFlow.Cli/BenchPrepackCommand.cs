// `instaflow bench prepack --model DIR`: a loaded model's text encoder and UNet step with weights packed on every call
// against weights packed once, as interleaved pairs; --profile first splits one call of each by kernel.
using System.CommandLine;
using System.Globalization;
using InstaFlow.Nn;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Bench;

namespace InstaFlow.Cli;

public static class BenchPrepackCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "diffusers SD-1.5-family folder (as generate --model)", Required = true };
        var pairs = new Option<int>("--pairs") { Description = "timed pairs (packing every call, packed once) per network after one warm-up pair", DefaultValueFactory = _ => 5 };
        var maxRows = new Option<int>("--max-rows") { Description = "calls of at most this many rows keep a pack", DefaultValueFactory = _ => WeightPacking.DefaultMaxRows };
        var threads = new Option<int>("--threads") { Description = "threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var profile = new Option<bool>("--profile") { Description = "first split one call of each network by kernel, without and with the packs" };
        var cmd = new Command("prepack", "Time the text encoder and one UNet step with weights packed on every call and packed once, interleaved") { model, pairs, maxRows, threads, profile };
        cmd.SetAction(r =>
        {
            int n = r.GetValue(pairs), rows = r.GetValue(maxRows), t = r.GetValue(threads);
            if (n < 1 || rows < 1 || t < 1) throw new UserException($"--pairs, --max-rows and --threads must be at least 1 (got {n}, {rows} and {t})");
            Par.Threads = t;
            var inv = CultureInfo.InvariantCulture;
            var o = CliIO.Out;
            o.WriteLine($"machine: {KernelBench.MachineLine(t)}");
            using var m = PrepackBench.Load(r.GetValue(model)!, rows, msg => CliIO.Err.WriteLine(msg));
            if (r.GetValue(profile))
                foreach (var p in PrepackBench.Profiles(m))
                {
                    o.WriteLine(string.Format(inv, "\n{0}, {1}: {2:F3} s", p.Stage, p.Packed ? "weights packed once" : "packing every call", p.Seconds));
                    o.WriteLine("| kernel | calls | ms | share |");
                    o.WriteLine("|---|---|---|---|");
                    double total = p.Entries.Sum(e => e.Seconds);
                    foreach (var e in p.Entries)
                        o.WriteLine(string.Format(inv, "| {0} | {1} | {2:F1} | {3:P1} |", e.Op, e.Calls, e.Seconds * 1e3, e.Seconds / total));
                }
            o.WriteLine("\n| network | packing every call, s: median (min..max) | packed once, s | once / every call, median of pairs (min..max) | CPU s, every call / once (ratio) | packs MiB | max abs diff |");
            o.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var s in PrepackBench.Pairs(m, n))
            {
                var ratios = s.EveryCall.Zip(s.Once, (a, b) => b / a).ToArray();
                o.WriteLine(string.Format(inv, "| {0} | {1:F3} ({2:F3}..{3:F3}) | {4:F3} ({5:F3}..{6:F3}) | **{7:F2}** ({8:F2}..{9:F2}) | {10:F3} / {11:F3} ({12:F2}) | {13:F0} | {14} |",
                    s.Stage, s.MedianEveryCall, s.EveryCall.Min(), s.EveryCall.Max(), s.MedianOnce, s.Once.Min(), s.Once.Max(),
                    s.MedianRatio, ratios.Min(), ratios.Max(), s.MedianEveryCallCpu, s.MedianOnceCpu, s.MedianCpuRatio,
                    s.PackedBytes / (1024.0 * 1024.0), s.MaxAbsDiff.ToString("G3", inv)));
            }
            o.WriteLine(string.Format(inv, "packs of all networks: {0:F0} MiB; peak RSS {1:F2} GiB", m.PackedWeightBytes / (1024.0 * 1024.0), Sd15Bench.PeakRssGiB()));
            return 0;
        });
        return cmd;
    }
}
