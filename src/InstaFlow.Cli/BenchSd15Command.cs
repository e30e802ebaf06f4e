// `instaflow bench sd15`: times the full-size SD-1.5 stages with random weights (no download) and prints a table
// or, with --json, one JSON object per stage.
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Bench;

namespace InstaFlow.Cli;

public static class BenchSd15Command
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "print one JSON object per stage" };
        var runs = new Option<int>("--runs") { Description = "timed runs per stage (after one warm-up)", DefaultValueFactory = _ => 3 };
        var oneShot = new Option<bool>("--one-shot") { Description = "one image as generate makes it (each network released when done): each stage once, with the process's peak RSS" };
        var lowMemory = new Option<bool>("--low-memory") { Description = "with --one-shot: the idle-buffer cap of generate --low-memory" };
        var singleFile = new Option<string?>("--write-single-file") { Description = "only write the random SD-1.5 as one LDM single file (F32, ~4.3 GB) here, to time and measure loading it (convert / generate --model FILE)" };
        var cmd = new Command("sd15", "Time the full-size SD-1.5 text encoder, UNet (batch 1 and 2), VAE decoder and TAESD decoder with random weights");
        cmd.Options.Add(json);
        cmd.Options.Add(runs);
        cmd.Options.Add(oneShot);
        cmd.Options.Add(lowMemory);
        cmd.Options.Add(singleFile);
        cmd.SetAction(r =>
        {
            if (r.GetValue(singleFile) is string file)
            {
                var (bytes, seconds) = Sd15Bench.WriteSingleFile(file, msg => CliIO.Err.WriteLine(msg));
                CliIO.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0}: {1:F2} GB LDM single file written in {2:F1} s", file, bytes / 1e9, seconds));
                return 0;
            }
            int n = r.GetValue(runs);
            if (n < 1) throw new UserException($"--runs must be at least 1, got {n}");
            bool asJson = r.GetValue(json);
            var inv = CultureInfo.InvariantCulture;
            if (r.GetValue(oneShot))
            {
                double total = 0, tiny = 0, vae = 0;
                foreach (var s in Sd15Bench.RunOneShot(r.GetValue(lowMemory) ? GenerateCommand.LowMemoryPoolBytes : null, msg => CliIO.Err.WriteLine(msg)))
                {
                    if (s.Name.StartsWith("taesd", StringComparison.Ordinal)) tiny = s.MedianSeconds;
                    else if (s.Name.StartsWith("vae", StringComparison.Ordinal)) { vae = s.MedianSeconds; total += vae; }
                    else if (!s.Name.StartsWith("load", StringComparison.Ordinal)) total += s.MedianSeconds;
                    CliIO.Out.WriteLine(asJson ? JsonSerializer.Serialize(new { stage = s.Name, seconds = s.MedianSeconds, peak_rss_gib = s.PeakRssGiB })
                        : string.Format(inv, "{0,-52} {1,8:F3} s   peak RSS {2:F2} GiB", s.Name, s.MedianSeconds, s.PeakRssGiB));
                }
                CliIO.Out.WriteLine(string.Format(inv, "one image (text + unet + vae decode): {0:F2} s; with the TAESD decode instead: {1:F2} s", total,
                    total - vae + tiny));
                return 0;
            }
            if (!asJson) CliIO.Out.WriteLine($"{"stage",-36} {"shape",-16} {"median s",9} {"min s",8} {"GFLOP",8} {"GFLOP/s",8} {"peak RSS GiB",12}");
            double image = 0, taesd = 0, imageGflop = 0;
            // The machine is shared and its speed drifts: the FMA peak is measured in the same run, before and after.
            double peakBefore = KernelBench.MeasurePeakGflops(Par.Threads, 3, 5_000_000);
            foreach (var s in Sd15Bench.Run(n, msg => CliIO.Err.WriteLine(msg)))
            {
                if (s.Name.StartsWith("text encoder, 1", StringComparison.Ordinal) || s.Name.StartsWith("unet, batch 1", StringComparison.Ordinal)) { image += s.MedianSeconds; taesd += s.MedianSeconds; imageGflop += s.Gflop; }
                if (s.Name.StartsWith("vae", StringComparison.Ordinal)) { image += s.MedianSeconds; imageGflop += s.Gflop; }
                if (s.Name.StartsWith("taesd", StringComparison.Ordinal)) taesd += s.MedianSeconds;
                if (asJson)
                    CliIO.Out.WriteLine(JsonSerializer.Serialize(new { stage = s.Name, shape = s.Shape, median_s = s.MedianSeconds, min_s = s.MinSeconds, gflop = s.Gflop, gflops = s.GflopsPerSecond, peak_rss_gib = s.PeakRssGiB }));
                else
                    CliIO.Out.WriteLine(string.Format(inv, "{0,-36} {1,-16} {2,9:F3} {3,8:F3} {4,8:F1} {5,8:F1} {6,12:F2}", s.Name, s.Shape, s.MedianSeconds, s.MinSeconds, s.Gflop, s.GflopsPerSecond, s.PeakRssGiB));
            }
            double peak = Math.Max(peakBefore, KernelBench.MeasurePeakGflops(Par.Threads, 3, 5_000_000));
            double fraction = imageGflop / image / peak;
            if (asJson)
            {
                CliIO.Out.WriteLine(JsonSerializer.Serialize(new { stage = "one 512x512 image (text 1 thread + unet b1 + vae)", median_s = image, gflop = imageGflop, fma_peak_gflops = peak, peak_fraction = fraction }));
                CliIO.Out.WriteLine(JsonSerializer.Serialize(new { stage = "one 512x512 image (text 1 thread + unet b1 + taesd)", median_s = taesd }));
            }
            else
            {
                CliIO.Out.WriteLine(string.Format(inv, "one 512x512 one-step image (text 1t + unet b1 + vae): {0:F2} s, {1:F0} GFLOP, {2:F1} GFLOP/s = {3:P0} of the {4:F0} GFLOP/s FMA peak ({5} threads, the higher of two measurements around the run; an effective rate: the FLOPs are counted as direct convolutions, which Winograd does with fewer)",
                    image, imageGflop, imageGflop / image, fraction, peak, Par.Threads));
                CliIO.Out.WriteLine(string.Format(inv, "the same with the TAESD decoder (generate --taesd): {0:F2} s", taesd));
            }
            return 0;
        });
        return cmd;
    }
}
