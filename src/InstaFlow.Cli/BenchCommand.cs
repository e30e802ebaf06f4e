// `instaflow bench kernels`: prints the machine line, the measured FMA peak and one line per kernel case
// (text table or JSON lines); `bench train` times training steps. The measuring lives in the library.
using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using InstaFlow.Tensors.Bench;

namespace InstaFlow.Cli;

public static class BenchCommand
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Upper bound on --rounds: a thousand passes over the slowest case already take hours.</summary>
    private const int MaxRounds = 1000;

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "One JSON object per line instead of a table" };
        var runs = new Option<int>("--runs") { Description = "Timed runs per case (the median is reported)", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "Threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var filter = new Option<string?>("--filter") { Description = "Only the cases whose name contains this text, or one of several comma-separated texts (e.g. winograd or \"conv3x3 packed,attention\")" };
        var rounds = new Option<int>("--rounds") { Description = "Time the selected cases this many times over, one round after another, to see how they move with the machine's state", DefaultValueFactory = _ => 1 };
        var kernels = new Command("kernels", "Time GEMM, conv2d, attention and group norm at Stable Diffusion shapes") { json, runs, threads, filter, rounds };
        kernels.SetAction(parseResult =>
        {
            bool asJson = parseResult.GetValue(json);
            int n = parseResult.GetValue(runs), t = parseResult.GetValue(threads), rr = parseResult.GetValue(rounds);
            if (n < 1 || t < 1) throw new UserException($"--runs and --threads must be at least 1 (got {n} and {t})");
            if (rr < 1 || rr > MaxRounds) throw new UserException($"--rounds must be between 1 and {MaxRounds} (got {rr})");
            string? f = parseResult.GetValue(filter);
            if (f != null && KernelBench.CaseNames(f).Count == 0)
                throw new UserException($"--filter \"{f}\" matches no case; the cases are: {string.Join(", ", KernelBench.CaseNames())}");
            Run(asJson, n, t, f, rr);
            return 0;
        });
        return new Command("bench", "Benchmarks") { kernels, BenchSd15Command.Create(), BenchRefinerCommand.Create(), BenchPrepackCommand.Create(), Train() };
    }

    private static Command Train()
    {
        var batch = new Option<int>("--batch") { Description = "Latents per step", DefaultValueFactory = _ => 32 };
        var runs = new Option<int>("--runs") { Description = "Timed steps (after two warm-up steps; the median is reported)", DefaultValueFactory = _ => 10 };
        var threads = new Option<int>("--threads") { Description = "Threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var profile = new Option<bool>("--profile") { Description = "Then run as many steps again with per-op timing and print where a step's time goes" };
        // The sizes train flow takes, so a candidate architecture's step can be timed before a run is started with it.
        var channels = new Option<string>("--channels") { Description = "UNet block_out_channels", DefaultValueFactory = _ => "32,64,64" };
        var textHidden = new Option<int>("--text-hidden") { Description = "text encoder width (= UNet cross_attention_dim)", DefaultValueFactory = _ => 64 };
        var textLayers = new Option<int>("--text-layers") { Description = "text encoder layers", DefaultValueFactory = _ => 2 };
        var c = new Command("train", "Time training steps of the Twemoji 1-RF networks (text encoder + UNet) on synthetic data")
            { batch, runs, threads, profile, channels, textHidden, textLayers };
        c.SetAction(r =>
        {
            int b = r.GetValue(batch), n = r.GetValue(runs), t = r.GetValue(threads);
            if (b < 1 || n < 1 || t < 1) throw new UserException($"--batch, --runs and --threads must be at least 1 (got {b}, {n} and {t})");
            // under mpirun the ranks share each step's batch; rank 0 reports
            var world = CliWorld.Get();
            int hidden = r.GetValue(textHidden), layers = r.GetValue(textLayers);
            var arch = new InstaFlow.Training.TextToImage.FlowArchitecture
            {
                UnetChannels = TrainCommand.Ints(r.GetValue(channels)!), TextHidden = hidden, TextLayers = layers,
            };
            arch.Validate();
            var res = InstaFlow.Training.TextToImage.TrainBench.Run(b, n, t, arch, world, r.GetValue(profile));
            if (!CliWorld.Speaks) return 0;
            Console.WriteLine($"machine: {KernelBench.MachineLine(t)}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Twemoji 1-RF training step, batch {res.BatchSize}, {res.Parameters} parameters: median {res.MedianSeconds:F3} s ({res.MinSeconds:F3}-{res.MaxSeconds:F3}, {n} steps)"));
            if (res.Ranks > 1)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{res.Ranks} ranks x {t} threads: gradient all-reduce median {res.MedianAllReduceSeconds * 1e3:F1} ms per step ({res.MedianAllReduceSeconds / res.MedianSeconds:P0} of the step); FLOPs below are one rank's share"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{res.FlopsPerStep / 1e9:F2} GFLOP per step (GEMM, conv, attention; forward and backward): {res.Gflops:F1} GFLOP/s, {res.PeakFraction:P0} of the {res.PeakGflops:F0} GFLOP/s FMA peak"));
            if (res.Profile != null) PrintProfile(res.Profile, res.Runs);
            return 0;
        });
        return c;
    }

    /// <summary>The profiled steps' time per op kind, per step, most first; GFLOP/s where the op counts FLOPs.</summary>
    private static void PrintProfile(IReadOnlyList<InstaFlow.Tensors.Autograd.OpTiming> ops, int steps)
    {
        double total = ops.Sum(o => o.Seconds);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"per-op time over {steps} profiled steps ({total / steps * 1e3:F1} ms per step):"));
        Console.WriteLine($"{"stage",-9} {"op",-28} {"calls/step",10} {"ms/step",8} {"share",6} {"GFLOP/s",8}");
        foreach (var o in ops)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{o.Stage,-9} {o.Op,-28} {o.Calls / (double)steps,10:F1} {o.Seconds / steps * 1e3,8:F2} {o.Seconds / total,6:P1} {(o.Flops > 0 ? o.Gflops.ToString("F1", CultureInfo.InvariantCulture) : "-"),8}"));
    }

    private static void Run(bool asJson, int runs, int threads, string? filter, int rounds)
    {
        string machine = KernelBench.MachineLine(threads);
        double peak = KernelBench.MeasurePeakGflops(threads, runs);
        if (asJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { machine, peak_gflops = Math.Round(peak, 1) }, Json));
            KernelBench.RunAll(runs, threads, r => Console.WriteLine(JsonSerializer.Serialize(new
            {
                name = r.Name,
                round = r.Round,
                shape = r.Shape,
                median_s = r.MedianSeconds,
                min_s = r.Time.Min,
                max_s = r.Time.Max,
                cpu_s = r.Time.CpuMedian,
                gflops = r.IsCompute ? Math.Round(r.Rate, 1) : (double?)null,
                gbps = r.IsCompute ? (double?)null : Math.Round(r.Rate, 1),
                peak_gflops = Math.Round(r.PeakGflops, 1),
                peak_fraction = r.PeakFraction is double f ? Math.Round(f, 3) : (double?)null,
                speedup_vs_direct = r.SpeedupVsDirect is double v ? Math.Round(v, 3) : (double?)null,
            }, Json)), filter, rounds);
            return;
        }
        Console.WriteLine($"machine: {machine}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FMA peak: {peak:F1} GFLOP/s (median of {runs})"));
        // the round column appears only when there are several rounds
        string roundHead = rounds > 1 ? " round |" : "", roundRule = rounds > 1 ? "---|" : "";
        Console.WriteLine($"|{roundHead} case | shape | median ms (min-max) | rate at median | FMA peak just before | of that peak | per CPU second | vs direct, same run |");
        Console.WriteLine($"|{roundRule}---|---|---|---|---|---|---|---|");
        KernelBench.RunAll(runs, threads, r => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"|{(rounds > 1 ? $" {r.Round} |" : "")} {r.Name} | {r.Shape} | {r.MedianSeconds * 1e3:F2} ({r.Time.Min * 1e3:F2}-{r.Time.Max * 1e3:F2}) | {r.Rate:F1} {r.Unit} | {r.PeakGflops:F0} | {(r.PeakFraction is double f ? $"{f:P0}" : "-")} | {r.RatePerCpu:F1} | {(r.SpeedupVsDirect is double v ? $"{v:F2}x" : "-")} |")), filter, rounds);
    }
}
