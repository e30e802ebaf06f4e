// InstaFlow.OrtBench: the full-size SD-1.5 stages (text encoder, one InstaFlow UNet step, VAE decode, the whole image)
// through ONNX Runtime and through InstaFlow.NET in one process, timed in interleaved pairs, with output differences.
using System.Globalization;
using InstaFlow;
using InstaFlow.OrtBench;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Bench;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
try
{
    var o = OrtBenchOptions.Parse(args);
    if (o == null)
    {
        Console.WriteLine(OrtBenchOptions.Usage);
        return 0;
    }
    o.Validate();
    return new BenchRun(o).Execute();
}
// Bad input of any kind is one line naming the file and the fix; a stack trace would only bury it.
catch (Exception e) when (e is BenchInputException or InvalidInputException or FileNotFoundException or DirectoryNotFoundException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

internal sealed class BenchRun(OrtBenchOptions o)
{
    private static void Log(string s) => Console.Error.WriteLine(s);

    public int Execute()
    {
        Par.Threads = o.Threads;
        Console.WriteLine($"# InstaFlow.OrtBench, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: {KernelBench.MachineLine(o.Threads)}");
        if (o.RunsOrt)
            Console.WriteLine($"ONNX Runtime {OrtEngine.Version}: CPU execution provider, intra-op threads {o.Threads}, inter-op 1, sequential, graph optimization ALL");
        if (o.RunsOurs) Console.WriteLine($"InstaFlow.NET: Par.Threads {o.Threads}");
        Console.WriteLine($"load average before: {LoadAverage()}");
        var inputs = StageInputs.Load(o);
        Console.WriteLine($"inputs: {inputs.Source}");
        double peakBefore = KernelBench.MeasurePeakGflops(o.Threads, 3);
        Console.WriteLine($"FMA peak ({o.Threads} threads) before the runs: {peakBefore:F1} GFLOP/s");

        using var ort = o.RunsOrt ? new OrtEngine(o.OnnxDir, o.Networks, o.Threads, inputs.Timestep, Log) : null;
        if (ort != null) Console.WriteLine($"peak RSS after loading ONNX Runtime: {Sd15Bench.PeakRssGiB():F2} GiB");
        using var ours = o.RunsOurs ? new OurEngine(o.ModelDir!, o.Networks, Log, o.Prepack, o.PrepackRows) : null;
        if (ours != null) Console.WriteLine($"peak RSS after loading {(ort != null ? "both engines" : "InstaFlow.NET")}: {Sd15Bench.PeakRssGiB():F2} GiB");

        var results = new List<StageResult>();
        foreach (var stage in o.Stages) results.Add(RunStage(stage, inputs, ort, ours));

        double peakAfter = KernelBench.MeasurePeakGflops(o.Threads, 3);
        Console.WriteLine($"FMA peak ({o.Threads} threads) after the runs: {peakAfter:F1} GFLOP/s");
        Console.WriteLine($"load average after: {LoadAverage()}");
        Console.WriteLine();
        Report.Table(results, o, peakBefore);
        Console.WriteLine();
        Report.Diffs(results, o, inputs);
        Console.WriteLine();
        Console.WriteLine($"peak RSS of this process ({(ort != null && ours != null ? "both engines loaded" : ort != null ? "ONNX Runtime only" : "InstaFlow.NET only")}): {Sd15Bench.PeakRssGiB():F2} GiB");
        if (ours != null && o.Prepack) Console.WriteLine($"InstaFlow.NET weight packs: {ours.PackedWeightBytes / (1024.0 * 1024.0):F0} MiB");
        if (o.Profile)
        {
            // the timed sessions go first, so a profiled session never sits beside a second copy of its weights
            ort?.Dispose();
            foreach (var net in o.Networks) Profile(net, inputs, ours);
        }
        return 0;
    }

    /// <summary>One more call of the network per engine, split by ONNX Runtime operator type and by our kernels.</summary>
    private void Profile(SdStage net, StageInputs inputs, IStageEngine? ours)
    {
        if (o.RunsOrt)
        {
            string prefix = Path.Combine(Path.GetTempPath(), $"instaflow-ortbench-{OrtBenchOptions.StageName(net)}");
            using var profiled = new OrtEngine(o.OnnxDir, [net], o.Threads, inputs.Timestep, Log, prefix);
            // two warm-up calls, as in the timed pairs (the second is the slow one); the summary reads only the last run
            Call(profiled, net, inputs);
            Call(profiled, net, inputs);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Call(profiled, net, inputs);
            double wall = sw.Elapsed.TotalSeconds;
            string file = profiled.EndProfiling(net);
            var ops = OrtProfileSummary.LastRun(file);
            double total = ops.Sum(t => t.Seconds);
            Console.WriteLine($"\nONNX Runtime, {OrtBenchOptions.StageName(net)}: {wall:F3} s with the profiler on, node kernels {total:F3} s (profile: {file})");
            Console.WriteLine("| op type | nodes | ms | share |");
            Console.WriteLine("|---|---|---|---|");
            foreach (var t in ops) Console.WriteLine($"| {t.OpType} | {t.Nodes} | {t.Seconds * 1e3:F1} | {t.Seconds / total:P1} |");
        }
        if (ours != null)
        {
            var profile = new InstaFlow.Tensors.Autograd.OpProfile();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            using (profile.Start()) Call(ours, net, inputs);
            double wall = sw.Elapsed.TotalSeconds;
            var entries = profile.Entries();
            double total = entries.Sum(e => e.Seconds);
            Console.WriteLine($"\nInstaFlow.NET, {OrtBenchOptions.StageName(net)}: {wall:F3} s with the profile on");
            Console.WriteLine("| kernel | calls | ms | share |");
            Console.WriteLine("|---|---|---|---|");
            foreach (var e in entries) Console.WriteLine($"| {e.Stage} {e.Op} | {e.Calls} | {e.Seconds * 1e3:F1} | {e.Seconds / total:P1} |");
        }
    }

    private StageResult RunStage(SdStage stage, StageInputs inputs, IStageEngine? ort, IStageEngine? ours)
    {
        string name = OrtBenchOptions.StageName(stage);
        // Each stage starts with an empty pool, as Sd15Bench and the pipeline between stages leave it.
        BufferPool.Trim();
        var r = new StageResult(stage);
        // First warm-up pair: JIT, ORT's arena, our pool; it also counts our FLOPs (the same work ONNX Runtime does).
        if (ort != null)
        {
            r.OrtOutput = Call(ort, stage, inputs);
            CheckLength(stage, r.OrtOutput);
        }
        if (ours != null)
        {
            FlopCounter.Reset();
            FlopCounter.Enabled = true;
            try { r.OursOutput = Call(ours, stage, inputs); }
            finally { FlopCounter.Enabled = false; }
            r.Gflop = FlopCounter.Flops / 1e9;
        }
        // A second untimed pair: ONNX Runtime's second call in a session takes about twice its later calls' time (UNet
        // 5.9 s, then 2.9-3.0 s), which a median of few pairs would otherwise count.
        if (ort != null) Call(ort, stage, inputs);
        if (ours != null) Call(ours, stage, inputs);
        Log($"{name}: two warm-up pairs done");
        for (int p = 1; p <= o.Pairs; p++)
        {
            var line = $"{name} pair {p}:";
            if (ort != null)
            {
                r.OrtOutput = Timed(ort, stage, inputs, r.Times.Ort, r.Times.OrtCpu);
                line += $" ORT {r.Times.Ort[^1]:F3} s";
            }
            if (ours != null)
            {
                r.OursOutput = Timed(ours, stage, inputs, r.Times.Ours, r.Times.OursCpu);
                line += $" ours {r.Times.Ours[^1]:F3} s";
            }
            if (ort != null && ours != null) line += $" ours/ORT {r.Times.Ratios[^1]:F2}";
            Console.WriteLine(line);
        }
        return r;
    }

    private const int SettleMilliseconds = 200;

    private static float[] Timed(IStageEngine e, SdStage stage, StageInputs inputs, List<double> wall, List<double> cpu)
    {
        // ONNX Runtime's intra-op threads spin for a while after a run returns, and a run started meanwhile shares a
        // core with them: our text encoder timed 0.095-0.097 s right after ORT's and 0.076-0.082 s after a 100 ms pause
        // (0.082 alone). Every timed run, of either engine, starts after the same pause.
        Thread.Sleep(SettleMilliseconds);
        var cpu0 = Environment.CpuUsage.TotalTime;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var output = Call(e, stage, inputs);
        wall.Add(sw.Elapsed.TotalSeconds);
        cpu.Add((Environment.CpuUsage.TotalTime - cpu0).TotalSeconds);
        return output;
    }

    /// <summary>One stage on one engine; the whole image chains the engine's own outputs exactly as the pipeline does.</summary>
    private static float[] Call(IStageEngine e, SdStage stage, StageInputs inputs)
    {
        switch (stage)
        {
            case SdStage.TextEncoder: return e.EncodeText(inputs.Ids);
            case SdStage.Unet: return e.Velocity(inputs.InitLatents, inputs.PromptEmbeds);
            case SdStage.VaeDecode: return e.Decode(inputs.VaeLatents);
            default:
                var context = e.EncodeText(inputs.Ids);
                var velocity = e.Velocity(inputs.InitLatents, context);
                // One Euler step over the whole flow time (dt = 1), then the decoder's input scaling.
                var scaled = new float[velocity.Length];
                for (int i = 0; i < scaled.Length; i++) scaled[i] = (inputs.InitLatents[i] + velocity[i]) / inputs.ScalingFactor;
                return e.Decode(scaled);
        }
    }

    private void CheckLength(SdStage stage, float[] output)
    {
        int[] shape = stage switch
        {
            SdStage.TextEncoder => StageInputs.EmbShape,
            SdStage.Unet => StageInputs.LatentShape,
            _ => StageInputs.ImageShape,
        };
        int n = shape.Aggregate(1, (a, b) => a * b);
        if (output.Length != n)
        {
            var net = stage == SdStage.Image ? SdStage.VaeDecode : stage;
            throw new BenchInputException($"{Path.Combine(o.OnnxDir, OrtBenchOptions.OnnxFiles[net])}: the output has {output.Length} values, expected [{string.Join(",", shape)}]; export it with the ort-kit's anchor-export/export_sd15.py");
        }
    }

    private static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }
}

internal sealed class StageResult(SdStage stage)
{
    public SdStage Stage { get; } = stage;
    public StageTimes Times { get; } = new();
    public double Gflop { get; set; } = double.NaN;
    public float[]? OrtOutput { get; set; }
    public float[]? OursOutput { get; set; }
}

internal static class Report
{
    private static string Cell(Spread s) => double.IsNaN(s.Median) ? "-" : $"{s.Median:F3} ({s.Min:F3}..{s.Max:F3})";

    private static string Rate(double gflop, Spread s, double peak) =>
        double.IsNaN(gflop) || double.IsNaN(s.Median) ? "-" : $"{gflop / s.Median:F0} ({gflop / s.Median / peak:P0})";

    private static string Label(SdStage s) => s switch
    {
        SdStage.TextEncoder => "text encoder [1,77]",
        SdStage.Unet => "UNet b1, one InstaFlow step",
        SdStage.VaeDecode => "VAE decode 64x64 -> 512x512",
        _ => "whole image (te + UNet + VAE)",
    };

    /// <summary>The timing table in Markdown, ready for docs/PERFORMANCE.md. Rates count our FLOPs for both engines.</summary>
    public static void Table(IReadOnlyList<StageResult> results, OrtBenchOptions o, double peak)
    {
        Console.WriteLine($"Seconds: median (min..max) of {o.Pairs} {(o.Engines == BenchEngines.Both ? "interleaved pairs" : "runs")}; GFLOP counted by our engine; rate (fraction of the {peak:F0} GFLOP/s FMA peak measured before the runs); " +
            "CPU s = process user + system time per run, so GFLOP per CPU s is what a busy core did while other processes shared the machine.");
        Console.WriteLine();
        Console.WriteLine("| stage | GFLOP | ORT s | ours s | ours/ORT, median of pairs (min..max) | ORT GFLOP/s | ours GFLOP/s | CPU s per run, ORT / ours (GFLOP per CPU s) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            var ort = Spread.Of(r.Times.Ort);
            var ours = Spread.Of(r.Times.Ours);
            var ratio = Spread.Of(r.Times.Ratios);
            string ratioCell = double.IsNaN(ratio.Median) ? "-" : $"**{ratio.Median:F2}** ({ratio.Min:F2}..{ratio.Max:F2})";
            double ortCpu = Spread.Of(r.Times.OrtCpu).Median, oursCpu = Spread.Of(r.Times.OursCpu).Median;
            string cpu = $"{Fmt(ortCpu)} / {Fmt(oursCpu)} ({Fmt(r.Gflop / ortCpu, "F0")} / {Fmt(r.Gflop / oursCpu, "F0")})";
            Console.WriteLine($"| {Label(r.Stage)} | {(double.IsNaN(r.Gflop) ? "-" : r.Gflop.ToString("F1"))} | {Cell(ort)} | {Cell(ours)} | {ratioCell} | {Rate(r.Gflop, ort, peak)} | {Rate(r.Gflop, ours, peak)} | {cpu} |");
        }
    }

    private static string Fmt(double x, string format = "F2") => double.IsNaN(x) ? "-" : x.ToString(format);

    /// <summary>Largest absolute differences between the engines' outputs and against the diffusers reference.</summary>
    public static void Diffs(IReadOnlyList<StageResult> results, OrtBenchOptions o, StageInputs inputs)
    {
        Console.WriteLine("| stage | output | max abs ours - ORT | max abs ORT - reference | max abs ours - reference | max abs of the reference output |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            var reference = inputs.Reference(r.Stage);
            string output = r.Stage switch
            {
                SdStage.TextEncoder => "last_hidden_state [1,77,768]",
                SdStage.Unet => "velocity [1,4,64,64]",
                _ => "image [1,3,512,512]",
            };
            double scale = reference == null ? double.NaN : reference.Max(x => Math.Abs(x));
            Console.WriteLine($"| {Label(r.Stage)} | {output} | {G(r.OursOutput, r.OrtOutput)} | {G(r.OrtOutput, reference)} | {G(r.OursOutput, reference)} | {(reference == null ? "-" : scale.ToString("G3"))} |");
        }
    }

    // "-" when one side did not run; NaN stays visible as NaN (a non-finite output must not read as "not measured").
    private static string G(float[]? a, float[]? b) => a == null || b == null ? "-" : Diff.MaxAbs(a, b).ToString("G3");
}
