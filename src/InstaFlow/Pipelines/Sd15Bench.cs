// The full-size SD-1.5 architecture (CLIP-L text encoder, 860M-parameter UNet, VAE, and TAESD as the fast decoder)
// with random weights, timed stage by stage: what one 512x512 InstaFlow image costs on this machine, with no download.
using System.Diagnostics;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

public sealed record BenchStage(string Name, string Shape, double MedianSeconds, double MinSeconds, double Gflop, double PeakRssGiB)
{
    public double GflopsPerSecond => MedianSeconds > 0 ? Gflop / MedianSeconds : 0;
}

public static class Sd15Bench
{
    /// <summary>Builds the models (reported as the "load" stage), then times each stage `runs` times after one warm-up.</summary>
    public static IEnumerable<BenchStage> Run(int runs, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        var (text, unet, vae) = BuildSd15();
        var taesd = new AutoencoderTiny(new AutoencoderTinyConfig());
        taesd.InitDefault(4);
        log?.Invoke($"built SD-1.5 with random weights: text {text.ParameterCount / 1e6:F1}M, unet {unet.ParameterCount / 1e6:F1}M, vae {vae.ParameterCount / 1e6:F1}M parameters");
        yield return new BenchStage("load (build + random init)", "", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());

        var ids = PromptIds();
        using var ctxScope = TensorScope.Begin();
        Tensor ctx1;
        using (GradMode.NoGrad()) ctx1 = text.Forward(ids, 1).LastHiddenState;
        var ctx2 = Ops.Concat(new[] { ctx1, ctx1 }, 0);

        int threads = Par.Threads;
        Par.Threads = 1;
        yield return Time("text encoder, 1 thread", "[1, 77]", runs, () => text.Forward(ids, 1));
        Par.Threads = threads;
        yield return Time($"text encoder, {threads} threads", "[1, 77]", runs, () => text.Forward(ids, 1));
        var noise1 = Tensor.Full(0.5f, 1, 4, 64, 64);
        var noise2 = Tensor.Full(0.5f, 2, 4, 64, 64);
        yield return Time("unet, batch 1 (one InstaFlow step)", "[1, 4, 64, 64]", runs, () => unet.Forward(noise1, new[] { 1000f }, ctx1));
        yield return Time("unet, batch 2 (CFG step)", "[2, 4, 64, 64]", runs, () => unet.Forward(noise2, new[] { 1000f, 1000f }, ctx2));
        yield return Time("vae decode 512x512", "[1, 4, 64, 64]", runs, () => vae.Decode(noise1));
        yield return Time("taesd decode 512x512", "[1, 4, 64, 64]", runs, () => taesd.Decode(noise1));
    }

    /// <summary>
    /// One 512x512 one-step image the way `generate` makes it, in a fresh process: text encoder (then released), one
    /// UNet step (then released), VAE decode; maxPooledBytes caps the idle buffer pool during the UNet as
    /// `generate --low-memory` does; finally the TAESD decode of the same latents. Reports each stage once with the
    /// peak RSS so far.
    /// </summary>
    public static IEnumerable<BenchStage> RunOneShot(long? maxPooledBytes, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        var (text, unet, vae) = BuildSd15();
        BufferPool.Trim();
        log?.Invoke("built SD-1.5 with random weights");
        yield return new BenchStage("load (build + random init)", "", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());

        var ids = PromptIds();
        using var ng = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        sw.Restart();
        var ctx = text.Forward(ids, 1).LastHiddenState;
        foreach (var p in text.Parameters()) p.Value.Dispose();
        BufferPool.Trim();
        yield return new BenchStage("text encoder (then released)", "[1, 77]", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());
        long saved = BufferPool.MaxPooledBytes;
        if (maxPooledBytes is long cap) BufferPool.MaxPooledBytes = cap;
        sw.Restart();
        var latents = unet.Forward(Tensor.Full(0.5f, 1, 4, 64, 64), [1000f], ctx);
        yield return new BenchStage("unet, batch 1 (one InstaFlow step)", "[1, 4, 64, 64]", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());
        foreach (var p in unet.Parameters()) p.Value.Dispose();
        BufferPool.Trim();
        sw.Restart();
        vae.Decode(latents);
        BufferPool.MaxPooledBytes = saved;
        yield return new BenchStage("vae decode 512x512 (text encoder and unet released)", "[1, 4, 64, 64]", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());
        // the same latents through TAESD instead (generate --taesd), after a warm-up run
        var taesd = new AutoencoderTiny(new AutoencoderTinyConfig());
        taesd.InitDefault(4);
        taesd.Decode(latents);
        sw.Restart();
        taesd.Decode(latents);
        yield return new BenchStage("taesd decode 512x512 (instead of the vae)", "[1, 4, 64, 64]", sw.Elapsed.TotalSeconds, sw.Elapsed.TotalSeconds, 0, PeakRssGiB());
    }

    /// <summary>
    /// Writes the random SD-1.5 as one LDM/CompVis single file (F32, the layout of A1111/civitai checkpoints), so loading
    /// and converting a full-size single file can be timed and measured without a download. Returns size and seconds.
    /// </summary>
    public static (long Bytes, double Seconds) WriteSingleFile(string path, Action<string>? log = null)
    {
        var (text, unet, vae) = BuildSd15();
        log?.Invoke("built SD-1.5 with random weights");
        var sw = Stopwatch.StartNew();
        Models.Ldm.LdmWriter.Write(path, text, unet, vae);
        double seconds = sw.Elapsed.TotalSeconds;
        foreach (var m in new Module[] { text, unet, vae }) foreach (var p in m.Parameters()) p.Value.Dispose();
        return (new FileInfo(path).Length, seconds);
    }

    /// <summary>The SD-1.5 text encoder, UNet and VAE with seeded random weights.</summary>
    private static (ClipTextModel Text, UNet2DConditionModel Unet, AutoencoderKL Vae) BuildSd15()
    {
        var text = new ClipTextModel(new ClipTextConfig());
        var unet = new UNet2DConditionModel(new UNet2DConditionConfig());
        var vae = new AutoencoderKL(new AutoencoderKLConfig());
        foreach (var (m, seed) in new (Module, ulong)[] { (text, 1), (unet, 2), (vae, 3) }) m.InitDefault(seed);
        return (text, unet, vae);
    }

    /// <summary>77 ids as a short prompt gives them: start token, five tokens, end and padding tokens.</summary>
    internal static int[] PromptIds()
    {
        var ids = new int[77];
        ids[0] = 49406;
        for (int i = 1; i < 77; i++) ids[i] = i < 6 ? 320 + i : 49407;
        return ids;
    }

    private static BenchStage Time(string name, string shape, int runs, Func<object> body)
    {
        // Each stage starts with an empty pool, as the pipeline leaves it between stages.
        BufferPool.Trim();
        var times = new List<double>();
        double gflop = 0;
        for (int r = 0; r <= runs; r++)
        {
            using var scope = TensorScope.Begin();
            using var ng = GradMode.NoGrad();
            FlopCounter.Reset();
            FlopCounter.Enabled = true;
            var sw = Stopwatch.StartNew();
            body();
            double s = sw.Elapsed.TotalSeconds;
            FlopCounter.Enabled = false;
            gflop = FlopCounter.Flops / 1e9;
            if (r > 0) times.Add(s); // run 0 warms up the pool and the JIT
        }
        times.Sort();
        return new BenchStage(name, shape, times[times.Count / 2], times[0], gflop, PeakRssGiB());
    }

    /// <summary>Peak resident set size of this process (VmHWM), in GiB; 0 where /proc is unavailable.</summary>
    public static double PeakRssGiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    // The kernel writes "VmHWM:\t%8lu kB": from 10^7 kB (9.5 GiB) on no space pads the number, and
                    // only the tab separates it from the name.
                    return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) / (1024.0 * 1024.0);
        }
        catch (IOException) { }
        return 0;
    }
}
