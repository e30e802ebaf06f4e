// Kernel micro-benchmarks behind `instaflow bench kernels`: measures the machine's FMA peak, then times GEMM,
// conv2d, attention and group norm at Stable Diffusion shapes (median of several runs after warm-up).
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors.Bench;

/// <summary>
/// Seconds per call over the timed runs, and the median process CPU seconds per call: on a shared machine
/// work / CPU seconds estimates what one core does while it is actually running this kernel.
/// </summary>
public readonly record struct Timing(double Median, double Min, double Max, double CpuMedian);

/// <summary>One timed case. Work is FLOPs (Unit "GFLOP/s") or bytes moved (Unit "GB/s"); PeakGflops was measured just before it.</summary>
public sealed record BenchResult(string Name, string Shape, Timing Time, double Work, string Unit, double PeakGflops)
{
    /// <summary>For paired cases: the other path's median time divided by this one's, timed interleaved in the same run.</summary>
    public double? SpeedupVsDirect { get; init; }
    /// <summary>Which pass over the selected cases measured this (1 unless several rounds were asked for).</summary>
    public int Round { get; init; } = 1;
    public double MedianSeconds => Time.Median;
    public double Rate => Work / MedianSeconds / 1e9;
    /// <summary>Work per CPU second (per busy core), in the same unit as Rate.</summary>
    public double RatePerCpu => Work / Time.CpuMedian / 1e9;
    public bool IsCompute => Unit == "GFLOP/s";
    /// <summary>Fraction of the measured FMA peak (compute cases only).</summary>
    public double? PeakFraction => IsCompute ? Rate / PeakGflops : null;
}

public static unsafe class KernelBench
{
    /// <summary>A run repeats the call until it lasts this long, so short kernels are not lost in timer noise.</summary>
    private const double MinRunSeconds = 0.02;

    public static string VectorWidth => GemmKernels.Isa switch { GemmIsa.Avx512 => "AVX-512 (512-bit)", GemmIsa.Avx2 => "AVX2 (256-bit)", _ => "scalar" };

    public static string MachineLine(int threads)
    {
        string cpu = "unknown CPU";
        if (File.Exists("/proc/cpuinfo"))
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu;
        return $"{cpu}, {Environment.ProcessorCount} cores ({threads} used), {VectorWidth}, {RuntimeInformation.FrameworkDescription}";
    }

    /// <summary>
    /// FMA peak in GFLOP/s: every thread runs independent FMA chains on registers only (enough chains to cover the
    /// FMA latency on both pipes), all threads at once; median over runs.
    /// </summary>
    public static double MeasurePeakGflops(int threads, int runs, long iters = 20_000_000)
    {
        // Thread-pool workers spin for a while after the last parallel loop; let them park first, or they share the
        // cores with the probe (bench train read 252-267 GFLOP/s right after its steps).
        Thread.Sleep(200);
        var samples = new List<double>();
        for (int r = 0; r <= runs; r++)
        {
            // Each worker stamps its own start and end: a clock kept by this thread started late whenever the workers
            // took both cores first, and the peak came out up to 1.5x too high (685 against ~450 GFLOP/s).
            using var start = new Barrier(threads);
            var begin = new long[threads];
            var end = new long[threads];
            var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                begin[i] = Stopwatch.GetTimestamp();
                FmaChains(iters);
                end[i] = Stopwatch.GetTimestamp();
            })).ToList();
            workers.ForEach(w => w.Start());
            workers.ForEach(w => w.Join());
            double seconds = (double)(end.Max() - begin.Min()) / Stopwatch.Frequency;
            double flops = (double)threads * iters * FmaChainCount * Lanes * 2;
            if (r > 0) samples.Add(flops / seconds / 1e9);
        }
        return Median(samples);
    }

    private const int FmaChainCount = 12;
    private static int Lanes => GemmKernels.Isa == GemmIsa.Avx512 ? 16 : GemmKernels.Isa == GemmIsa.Avx2 ? 8 : 1;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float FmaChains(long iters) => GemmKernels.Isa switch
    {
        GemmIsa.Avx512 => FmaChains<Vector512<float>, Isa512>(iters),
        GemmIsa.Avx2 => FmaChains<Vector256<float>, Isa256>(iters),
        _ => FmaChainsScalar(iters),
    };

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChains<TV, TIsa>(long iters) where TV : struct where TIsa : IFmaIsa<TV>
    {
        var m = TIsa.Broadcast(0.999f); var c = TIsa.Broadcast(1e-3f);
        TV s0 = m, s1 = m, s2 = m, s3 = m, s4 = m, s5 = m, s6 = m, s7 = m, s8 = m, s9 = m, s10 = m, s11 = m;
        for (long i = 0; i < iters; i++)
        {
            s0 = TIsa.Fma(s0, m, c); s1 = TIsa.Fma(s1, m, c); s2 = TIsa.Fma(s2, m, c); s3 = TIsa.Fma(s3, m, c);
            s4 = TIsa.Fma(s4, m, c); s5 = TIsa.Fma(s5, m, c); s6 = TIsa.Fma(s6, m, c); s7 = TIsa.Fma(s7, m, c);
            s8 = TIsa.Fma(s8, m, c); s9 = TIsa.Fma(s9, m, c); s10 = TIsa.Fma(s10, m, c); s11 = TIsa.Fma(s11, m, c);
        }
        var t = TIsa.Add(TIsa.Add(TIsa.Add(s0, s1), TIsa.Add(s2, s3)), TIsa.Add(TIsa.Add(s4, s5), TIsa.Add(s6, s7)));
        return TIsa.Sum(TIsa.Add(t, TIsa.Add(TIsa.Add(s8, s9), TIsa.Add(s10, s11))));
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChainsScalar(long iters)
    {
        float s0 = 1, s1 = 2, s2 = 3, s3 = 4, s4 = 5, s5 = 6, s6 = 7, s7 = 8, s8 = 9, s9 = 10, s10 = 11, s11 = 12;
        const float m = 0.999f, c = 1e-3f;
        for (long i = 0; i < iters; i++)
        {
            s0 = MathF.FusedMultiplyAdd(s0, m, c); s1 = MathF.FusedMultiplyAdd(s1, m, c); s2 = MathF.FusedMultiplyAdd(s2, m, c);
            s3 = MathF.FusedMultiplyAdd(s3, m, c); s4 = MathF.FusedMultiplyAdd(s4, m, c); s5 = MathF.FusedMultiplyAdd(s5, m, c);
            s6 = MathF.FusedMultiplyAdd(s6, m, c); s7 = MathF.FusedMultiplyAdd(s7, m, c); s8 = MathF.FusedMultiplyAdd(s8, m, c);
            s9 = MathF.FusedMultiplyAdd(s9, m, c); s10 = MathF.FusedMultiplyAdd(s10, m, c); s11 = MathF.FusedMultiplyAdd(s11, m, c);
        }
        return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9 + s10 + s11;
    }

    /// <summary>
    /// Runs every case with Par.Threads = threads, reporting each result as soon as it is measured. The machine is
    /// shared, so the FMA peak is measured again just before each case and its fraction is taken against that.
    /// filter keeps the cases whose name contains one of its comma-separated parts. rounds passes over the selected
    /// cases, one after another, show how a case's time moves with the machine's state (each case sets up afresh).
    /// </summary>
    public static void RunAll(int runs, int threads, Action<BenchResult> report, string? filter = null, int rounds = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        var cases = Select(filter);
        int saved = Par.Threads;
        Par.Threads = threads;
        try
        {
            for (int round = 1; round <= rounds; round++)
                foreach (var (_, run) in cases)
                    foreach (var r in run(runs, MeasurePeakGflops(threads, 3, 5_000_000))) report(r with { Round = round });
        }
        finally
        {
            Par.Threads = saved;
            BufferPool.Trim();
        }
    }

    /// <summary>The names of the cases <see cref="RunAll"/> runs for this filter (every case for null), in their order.</summary>
    public static IReadOnlyList<string> CaseNames(string? filter = null) => Select(filter).Select(c => c.Name).ToList();

    private static List<(string Name, Func<int, double, IEnumerable<BenchResult>> Run)> Select(string? filter)
    {
        var cases = Cases();
        if (filter == null) return cases;
        var parts = filter.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return cases.Where(c => parts.Any(f => c.Name.Contains(f, StringComparison.OrdinalIgnoreCase))).ToList();
    }

    private static List<(string Name, Func<int, double, IEnumerable<BenchResult>> Run)> Cases()
    {
        var cases = new List<(string Name, Func<int, double, IEnumerable<BenchResult>> Run)>();
        void Add(string name, Func<int, double, BenchResult> run) => cases.Add((name, (r, p) => new[] { run(r, p) }));
        foreach (int n in new[] { 512, 1024, 2048, 4096 })
            Add($"gemm {n}", (r, p) => GemmCase($"gemm {n}", n, n, n, false, r, p));
        Add("gemm sd proj", (r, p) => GemmCase("gemm sd proj", 4096, 320, 320, true, r, p));
        Add("gemm sd ff-up", (r, p) => GemmCase("gemm sd ff-up", 4096, 1280, 320, true, r, p));
        Add("gemm sd ff-down", (r, p) => GemmCase("gemm sd ff-down", 4096, 320, 1280, true, r, p));
        Add("gemm sd text", (r, p) => GemmCase("gemm sd text", 77, 768, 768, true, r, p));
        // The UNet's deeper Linear layers as `--prepack` runs them (weight packed once, bias in the store): 32x32 level
        // (1024 tokens, 640 channels), 16x16 (256, 1280) and the middle block (64, 1280).
        foreach (var (name, m, n, k) in new[] { ("32 proj", 1024, 640, 640), ("32 ff-up", 1024, 5120, 640), ("32 ff-down", 1024, 640, 2560),
                     ("16 proj", 256, 1280, 1280), ("16 ff-up", 256, 10240, 1280), ("16 ff-down", 256, 1280, 5120), ("8 proj", 64, 1280, 1280) })
            Add($"linear packed {name}", (r, p) => LinearPackedCase($"linear packed {name}", m, n, k, r, p));
        Add("conv3x3 unet", (r, p) => ConvCase("conv3x3 unet", new Conv2dShape(1, 320, 64, 64, 320, 3, 3, 1, 1, 1, 1, 1), r, p));
        Add("conv3x3 vae", (r, p) => ConvCase("conv3x3 vae", new Conv2dShape(1, 128, 512, 512, 128, 3, 3, 1, 1, 1, 1, 1), r, p));
        Add("conv3x3 unet-deep", (r, p) => ConvCase("conv3x3 unet-deep", new Conv2dShape(1, 640, 32, 32, 640, 3, 3, 1, 1, 1, 1, 1), r, p));
        // The UNet's deep levels (direct implicit GEMM) with the weight packed once, as `--prepack` runs them.
        Add("conv3x3 packed unet 16", (r, p) => ConvCase("conv3x3 packed unet 16", new Conv2dShape(1, 1280, 16, 16, 1280, 3, 3, 1, 1, 1, 1, 1), r, p, packed: true));
        Add("conv3x3 packed unet 8", (r, p) => ConvCase("conv3x3 packed unet 8", new Conv2dShape(1, 1280, 8, 8, 1280, 3, 3, 1, 1, 1, 1, 1), r, p, packed: true));
        // The VAE decoder's conv_out: three output channels at 512x512.
        Add("conv3x3 vae out", (r, p) => ConvCase("conv3x3 vae out", new Conv2dShape(1, 128, 512, 512, 3, 3, 3, 1, 1, 1, 1, 1), r, p));
        // The UNet's proj_in / proj_out at 64x64 and 32x32 (1x1 convs over 320 and 640 channels).
        Add("conv1x1 unet 64", (r, p) => ConvCase("conv1x1 unet 64", new Conv2dShape(1, 320, 64, 64, 320, 1, 1, 1, 0, 0, 0, 0), r, p));
        Add("conv1x1 unet 32", (r, p) => ConvCase("conv1x1 unet 32", new Conv2dShape(1, 640, 32, 32, 640, 1, 1, 1, 0, 0, 0, 0), r, p));
        // The VAE decoder's shortcut 1x1 convs where the channels halve (up_blocks.2 and .3, resnets.0).
        Add("conv1x1 vae 256", (r, p) => ConvCase("conv1x1 vae 256", new Conv2dShape(1, 512, 256, 256, 256, 1, 1, 1, 0, 0, 0, 0), r, p));
        Add("conv1x1 vae 512", (r, p) => ConvCase("conv1x1 vae 512", new Conv2dShape(1, 256, 512, 512, 128, 1, 1, 1, 0, 0, 0, 0), r, p));
        // Winograd F(4x4) and F(6x6) against the direct implicit GEMM, interleaved run by run (rates count the direct conv's FLOPs).
        foreach (var (name, c, hw) in new[] { ("vae 512", 128, 512), ("vae 256", 256, 256), ("vae 256 wide", 512, 256), ("vae 128", 512, 128), ("vae 64", 512, 64), ("unet 64", 320, 64),
                     ("unet 32", 640, 32), ("unet 16", 1280, 16), ("unet 8", 1280, 8) })
            cases.Add(($"winograd {name}", (r, p) => WinogradCase($"{name}", new Conv2dShape(1, c, hw, hw, c, 3, 3, 1, 1, 1, 1, 1), r, p)));
        Add("attention self", (r, p) => AttentionCase("attention self", new AttentionShape(1, 8, 4096, 4096, 40, false), r, p));
        Add("attention cross", (r, p) => AttentionCase("attention cross", new AttentionShape(1, 8, 4096, 77, 40, false), r, p));
        // The VAE decoder's mid-block attention: one head of 512 channels over the 64x64 latent.
        Add("attention vae", (r, p) => AttentionCase("attention vae", new AttentionShape(1, 1, 4096, 4096, 512, false), r, p));
        // The Twemoji training networks' shapes (`bench train --channels 64,128,128 --text-hidden 128`, batch 32,
        // 4 heads): UNet self- and cross-attention (16 prompt tokens) at 16x16, 8x8 and 4x4, and the causal text encoder.
        foreach (var (name, tq, tk, d, causal) in new[] { ("self 256 d16", 256, 256, 16, false), ("cross 256x16 d16", 256, 16, 16, false),
                     ("self 64 d32", 64, 64, 32, false), ("cross 64x16 d32", 64, 16, 32, false), ("self 16 d32", 16, 16, 32, false),
                     ("text 16 d32", 16, 16, 32, true) })
            foreach (bool backward in new[] { false, true })
            {
                string full = $"attention train {name} {(backward ? "backward" : "forward")}";
                Add(full, (r, p) => AttentionTrainCase(full, new AttentionShape(32, 4, tq, tk, d, causal), backward, r, p));
            }
        // The Twemoji training networks' Linear weight gradients (batch 32: rows x in -> out, gw = g^T x over the rows),
        // as the backward rule runs them (split along the rows).
        foreach (var (rows, inF, outF) in new[] { (8192, 64, 512), (8192, 64, 64), (2048, 128, 1024), (2048, 128, 128), (8192, 256, 64) })
            Add($"linear train dW {rows}x{inF}->{outF}", (r, p) => LinearWeightGradCase($"linear train dW {rows}x{inF}->{outF}", rows, inF, outF, r, p));
        // The Twemoji training networks' 3x3 convs (batch 32): forward, input gradient and weight gradient, as a step runs them.
        foreach (var (name, c, o, hw) in new[] { ("64@16", 64, 64, 16), ("192->64@16", 192, 64, 16), ("128@8", 128, 128, 8), ("128@4", 128, 128, 4) })
        {
            foreach (var pass in new[] { "forward", "input" })
            {
                string full = $"conv train {name} {pass}";
                Add(full, (r, p) => ConvTrainCase(full, new Conv2dShape(32, c, hw, hw, o, 3, 3, 1, 1, 1, 1, 1), pass, r, p));
            }
            cases.Add(($"conv train {name} weight", (r, p) => ConvWeightGradCase($"conv train {name} weight", new Conv2dShape(32, c, hw, hw, o, 3, 3, 1, 1, 1, 1, 1), r, p)));
        }
        Add("groupnorm", (r, p) => GroupNormCase("groupnorm", 1, 320, 64 * 64, 32, r, p));
        return cases;
    }

    /// <summary>Linear-layer shapes (transB) are timed as x W^T, the way the model calls them.</summary>
    private static BenchResult GemmCase(string name, int m, int n, int k, bool transB, int runs, double peak)
    {
        using var buffers = new Buffers();
        float* a = buffers.Random((long)m * k), b = buffers.Random((long)k * n), c = buffers.Random((long)m * n);
        string shape = transB ? $"[{m}x{k}]*[{n}x{k}]^T" : $"[{m}x{k}]*[{k}x{n}]";
        var t = Time(runs, () => Gemm.Sgemm(false, transB, m, n, k, 1f, a, k, b, transB ? k : n, 0f, c, n));
        return new BenchResult(name, shape, t, 2.0 * m * n * k, "GFLOP/s", peak);
    }

    private static BenchResult LinearPackedCase(string name, int m, int n, int k, int runs, double peak)
    {
        using var buffers = new Buffers();
        float* a = buffers.Random((long)m * k), w = buffers.Random((long)n * k), bias = buffers.Random(n), c = buffers.Random((long)m * n);
        var stored = new StoredData((byte*)w, TensorDType.F32);
        float* packed = buffers.Random(GemmPacking.PackedSize(n, k, GemmKernels.NR));
        Gemm.PackStoredBT(stored, k, n, k, packed);
        var t = Time(runs, () => Gemm.SgemmStoredBT(m, n, k, a, k, stored, k, 0f, c, n, packed, bias));
        return new BenchResult(name, $"[{m}x{k}]*[{n}x{k}]^T+bias", t, 2.0 * m * n * k, "GFLOP/s", peak);
    }

    private static BenchResult ConvCase(string name, Conv2dShape s, int runs, double peak, bool packed = false)
    {
        using var buffers = new Buffers();
        float* x = buffers.Random((long)s.Batch * s.InC * s.H * s.W), w = buffers.Random((long)s.OutC * s.InC * s.KH * s.KW);
        float* bias = buffers.Random(s.OutC), y = buffers.Random((long)s.Batch * s.OutC * s.OutH * s.OutW);
        int kdim = s.InC * s.KH * s.KW;
        float* wp = packed ? buffers.Random(GemmPacking.PackedSize(s.OutC, kdim, GemmKernels.MR)) : null;
        var stored = new StoredData((byte*)w, TensorDType.F32);
        if (packed) GemmPacking.PackA(stored, kdim, s.OutC, kdim, wp);
        var t = Time(runs, () => Conv2d.Forward(s, x, stored, bias, y, wp));
        return new BenchResult(name, $"[{s.Batch},{s.InC},{s.H},{s.W}]->{s.OutC} {s.KH}x{s.KW}", t, s.Flops, "GFLOP/s", peak);
    }

    /// <summary>
    /// The same conv through the direct implicit GEMM and through Winograd F(4x4) and F(6x6), one timed run of each in
    /// turn, so all see the same machine load; every rate counts the direct conv's FLOPs.
    /// </summary>
    private static IEnumerable<BenchResult> WinogradCase(string name, Conv2dShape s, int runs, double peak)
    {
        using var buffers = new Buffers();
        float* x = buffers.Random((long)s.Batch * s.InC * s.H * s.W), w = buffers.Random((long)s.OutC * s.InC * s.KH * s.KW);
        float* bias = buffers.Random(s.OutC), y = buffers.Random((long)s.Batch * s.OutC * s.OutH * s.OutW);
        var stored = new StoredData((byte*)w, TensorDType.F32);
        var t = TimeInterleaved(runs, () => Conv2d.Forward(s, x, w, bias, y),
            () => Conv2dWinograd.Forward(s, x, stored, bias, y, WinogradTile.F4),
            () => Conv2dWinograd.Forward(s, x, stored, bias, y, WinogradTile.F6));
        string shape = $"[{s.Batch},{s.InC},{s.H},{s.W}]->{s.OutC} 3x3";
        return new[]
        {
            new BenchResult($"conv3x3 {name} direct", shape, t[0], s.Flops, "GFLOP/s", peak),
            new BenchResult($"conv3x3 {name} winograd F4", shape, t[1], s.Flops, "GFLOP/s", peak) { SpeedupVsDirect = t[0].Median / t[1].Median },
            new BenchResult($"conv3x3 {name} winograd F6", shape, t[2], s.Flops, "GFLOP/s", peak) { SpeedupVsDirect = t[0].Median / t[2].Median },
        };
    }

    /// <summary>Like <see cref="Time"/> for several calls, taking one run of each in turn.</summary>
    private static Timing[] TimeInterleaved(int runs, params Action[] calls)
    {
        var sw = new Stopwatch();
        var reps = new int[calls.Length];
        var samples = calls.Select(_ => new List<double>()).ToArray();
        var cpu = calls.Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < calls.Length; i++) reps[i] = RepsAfterWarmUp(calls[i], sw);
        for (int r = 0; r < runs; r++)
            for (int i = 0; i < calls.Length; i++)
            {
                var cpu0 = Environment.CpuUsage.TotalTime;
                sw.Restart();
                for (int k = 0; k < reps[i]; k++) calls[i]();
                samples[i].Add(sw.Elapsed.TotalSeconds / reps[i]);
                cpu[i].Add((Environment.CpuUsage.TotalTime - cpu0).TotalSeconds / reps[i]);
            }
        return Enumerable.Range(0, calls.Length).Select(i => new Timing(Median(samples[i]), samples[i].Min(), samples[i].Max(), Median(cpu[i]))).ToArray();
    }

    private static BenchResult AttentionCase(string name, AttentionShape s, int runs, double peak)
    {
        using var buffers = new Buffers();
        long qn = (long)s.Batch * s.Tq * s.Width, kn = (long)s.Batch * s.Tk * s.Width;
        float* q = buffers.Random(qn), k = buffers.Random(kn), v = buffers.Random(kn), o = buffers.Random(qn);
        float scale = 1f / MathF.Sqrt(s.HeadDim);
        var t = Time(runs, () => Attention.Forward(s, q, k, v, o, null, scale));
        return new BenchResult(name, $"{s.Heads}h q{s.Tq} k{s.Tk} d{s.HeadDim}", t, s.Flops, "GFLOP/s", peak);
    }

    /// <summary>Forward, or backward from the forward's lse; FLOPs as the autograd rules count them (backward 2.5x).</summary>
    private static BenchResult AttentionTrainCase(string name, AttentionShape s, bool backward, int runs, double peak)
    {
        using var buffers = new Buffers();
        long qn = (long)s.Batch * s.Tq * s.Width, kn = (long)s.Batch * s.Tk * s.Width;
        float* q = buffers.Random(qn), k = buffers.Random(kn), v = buffers.Random(kn), o = buffers.Random(qn), go = buffers.Random(qn);
        float* lse = buffers.Random((long)s.Batch * s.Heads * s.Tq), gq = buffers.Random(qn), gk = buffers.Random(kn), gv = buffers.Random(kn);
        float scale = 1f / MathF.Sqrt(s.HeadDim);
        Attention.Forward(s, q, k, v, o, lse, scale);
        var t = backward
            ? Time(runs, () => Attention.Backward(s, q, k, v, o, lse, go, scale, gq, gk, gv))
            : Time(runs, () => Attention.Forward(s, q, k, v, o, lse, scale));
        return new BenchResult(name, $"b{s.Batch} {s.Heads}h q{s.Tq} k{s.Tk} d{s.HeadDim}{(s.Causal ? " causal" : "")}", t,
            backward ? s.Flops / 2 * 5 : s.Flops, "GFLOP/s", peak);
    }

    /// <summary>One pass of a training conv, taking the path the autograd rules take (Winograd where they would).</summary>
    private static BenchResult ConvTrainCase(string name, Conv2dShape s, string pass, int runs, double peak)
    {
        using var buffers = new Buffers();
        long xn = (long)s.Batch * s.InC * s.H * s.W, yn = (long)s.Batch * s.OutC * s.OutH * s.OutW;
        float* x = buffers.Random(xn), w = buffers.Random((long)s.OutC * s.InC * s.KH * s.KW), bias = buffers.Random(s.OutC);
        float* y = buffers.Random(yn), gy = buffers.Random(yn), gx = buffers.Random(xn);
        var stored = new StoredData((byte*)w, TensorDType.F32);
        Action call = pass switch
        {
            "forward" => Conv2dWinograd.ShouldUse(s)
                ? () => Conv2dWinograd.Forward(s, x, stored, bias, y, Conv2dWinograd.TileFor(s))
                : () => Conv2d.Forward(s, x, w, bias, y),
            _ => Conv2d.InputGradientConv(s) is { } ig && Conv2dWinograd.ShouldUse(ig)
                ? () => Conv2d.BackwardInputWinograd(s, gy, w, gx)
                : () => Conv2d.BackwardInput(s, gy, w, gx),
        };
        var t = Time(runs, call);
        return new BenchResult(name, $"b{s.Batch} [{s.InC},{s.H},{s.W}]->{s.OutC} 3x3", t, s.Flops, "GFLOP/s", peak);
    }

    private static BenchResult LinearWeightGradCase(string name, int rows, int inF, int outF, int runs, double peak)
    {
        using var buffers = new Buffers();
        float* g = buffers.Random((long)rows * outF), x = buffers.Random((long)rows * inF), gw = buffers.Random((long)outF * inF);
        var t = Time(runs, () => GemmSplitK.Sgemm(true, false, outF, inF, rows, g, outF, x, inF, gw));
        return new BenchResult(name, $"[{rows}x{outF}]^T*[{rows}x{inF}]", t, 2.0 * rows * inF * outF, "GFLOP/s", peak);
    }

    /// <summary>A training conv's weight gradient by the patch GEMM and by the Winograd adjoint, interleaved run by run (rates count the direct FLOPs).</summary>
    private static IEnumerable<BenchResult> ConvWeightGradCase(string name, Conv2dShape s, int runs, double peak)
    {
        using var buffers = new Buffers();
        long xn = (long)s.Batch * s.InC * s.H * s.W, yn = (long)s.Batch * s.OutC * s.OutH * s.OutW;
        float* x = buffers.Random(xn), gy = buffers.Random(yn), gw = buffers.Random((long)s.OutC * s.InC * 9), gb = buffers.Random(s.OutC);
        var t = TimeInterleaved(runs, () => Conv2d.BackwardWeight(s, gy, x, gw, gb), () => Conv2d.BackwardWeightWinograd(s, gy, x, gw, gb));
        string shape = $"b{s.Batch} [{s.InC},{s.H},{s.W}]->{s.OutC} 3x3";
        return new[]
        {
            new BenchResult($"{name} direct", shape, t[0], s.Flops, "GFLOP/s", peak),
            new BenchResult($"{name} winograd F4", shape, t[1], s.Flops, "GFLOP/s", peak) { SpeedupVsDirect = t[0].Median / t[1].Median },
        };
    }

    /// <summary>Bytes moved: the input read once and the output written once (the compulsory traffic).</summary>
    private static BenchResult GroupNormCase(string name, int batch, int channels, int spatial, int groups, int runs, double peak)
    {
        using var buffers = new Buffers();
        long n = (long)batch * channels * spatial;
        float* x = buffers.Random(n), y = buffers.Random(n), gamma = buffers.Random(channels), beta = buffers.Random(channels);
        var t = Time(runs, () => Norms.GroupNormForward(x, gamma, beta, y, batch, channels, spatial, groups, 1e-5f, null, null));
        return new BenchResult(name, $"[{batch},{channels},{spatial}] {groups} groups", t, 2.0 * n * sizeof(float), "GB/s", peak);
    }

    /// <summary>Seconds per call over runs, after a warm-up that also picks how many calls make one run.</summary>
    /// <summary>Warm-up before a timed call: long enough for the runtime to recompile the kernels it calls at full optimization.</summary>
    private const double WarmUpSeconds = 0.5;
    private const int MaxWarmUpCalls = 60;

    /// <summary>
    /// Calls call for <see cref="WarmUpSeconds"/> (at least twice, at most <see cref="MaxWarmUpCalls"/> times): methods
    /// start unoptimized and are recompiled only after 30 calls and 100 ms without new ones, and a short warm-up timed
    /// the weight gradient's packing at that first tier. Returns the repetitions that make one timed run last
    /// <see cref="MinRunSeconds"/>, from the last call's time.
    /// </summary>
    private static int RepsAfterWarmUp(Action call, Stopwatch sw)
    {
        var total = Stopwatch.StartNew();
        int calls = 0;
        do
        {
            sw.Restart();
            call();
            calls++;
        } while (calls < 2 || calls < MaxWarmUpCalls && total.Elapsed.TotalSeconds < WarmUpSeconds);
        return Math.Max(1, (int)Math.Ceiling(MinRunSeconds / Math.Max(1e-7, sw.Elapsed.TotalSeconds)));
    }

    private static Timing Time(int runs, Action call)
    {
        var sw = new Stopwatch();
        int reps = RepsAfterWarmUp(call, sw);
        var samples = new List<double>();
        var cpu = new List<double>();
        for (int r = 0; r < runs; r++)
        {
            var cpu0 = Environment.CpuUsage.TotalTime;
            sw.Restart();
            for (int i = 0; i < reps; i++) call();
            samples.Add(sw.Elapsed.TotalSeconds / reps);
            cpu.Add((Environment.CpuUsage.TotalTime - cpu0).TotalSeconds / reps);
        }
        return new Timing(Median(samples), samples.Min(), samples.Max(), Median(cpu));
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        int h = xs.Count / 2;
        return xs.Count % 2 == 1 ? xs[h] : (xs[h - 1] + xs[h]) / 2;
    }

    /// <summary>Pooled buffers filled with seeded values in [-1, 1), all released together.</summary>
    private sealed class Buffers : IDisposable
    {
        private readonly List<NativeBuffer> _held = new();
        private readonly System.Random _rng = new(1234);

        public float* Random(long n)
        {
            var b = NativeBuffer.Rent(n * sizeof(float));
            _held.Add(b);
            float* p = (float*)b.Pointer;
            for (long i = 0; i < n; i++) p[i] = (float)(_rng.NextDouble() * 2 - 1);
            return p;
        }

        public void Dispose() => _held.ForEach(b => b.Release());
    }
}
