// `bench prepack`: a loaded SD model's text encoder and one UNet step, each weight packed on every call (the default)
// against weights packed once (WeightPacking), as interleaved pairs in one process; optionally where a call's time goes.
using System.Diagnostics;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Pipelines;

/// <summary>
/// Wall seconds of each pair (packing every call, packed once), the process's CPU seconds (user + system) of each
/// call, the packs' bytes and the largest difference between the two outputs (0: bit for bit the same).
/// </summary>
public sealed record PrepackPairs(string Stage, double[] EveryCall, double[] Once, double[] EveryCallCpu, double[] OnceCpu, long PackedBytes, float MaxAbsDiff)
{
    public double MedianEveryCall => Median(EveryCall);
    public double MedianOnce => Median(Once);
    /// <summary>Median over the pairs of once / every call.</summary>
    public double MedianRatio => Median(EveryCall.Zip(Once, (a, b) => b / a).ToArray());
    public double MedianCpuRatio => Median(EveryCallCpu.Zip(OnceCpu, (a, b) => b / a).ToArray());
    public double MedianEveryCallCpu => Median(EveryCallCpu);
    public double MedianOnceCpu => Median(OnceCpu);

    internal static double Median(double[] xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}

/// <summary>One profiled call: where its wall time went, by kernel (see <see cref="OpProfile"/>).</summary>
public sealed record PrepackProfile(string Stage, bool Packed, double Seconds, IReadOnlyList<OpTiming> Entries);

public static class PrepackBench
{
    /// <summary>The model's networks, marked for packing with maxRows (the packs are made in the warm-up pair).</summary>
    public static SdComponents Load(string modelDir, int maxRows, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        var model = SdComponents.Open(new ModelSource(modelDir));
        int marked = model.PackWeightsOnce(maxRows);
        log?.Invoke($"{modelDir} loaded in {sw.Elapsed.TotalSeconds:F1} s; {marked} Linear/Conv2d weights may keep a pack (calls of at most {maxRows} rows)");
        return model;
    }

    /// <summary>Text encoder [1, 77] and one UNet step [1, 4, 64, 64] (time 1000, seeded latents): a warm-up pair, then `pairs` timed pairs.</summary>
    public static IEnumerable<PrepackPairs> Pairs(SdComponents model, int pairs)
    {
        var (ids, latents, ctx) = Inputs(model);
        try
        {
            yield return TimePairs("text encoder [1, 77]", model.TextEncoder, pairs, () => model.TextEncoder.Forward(ids, 1).LastHiddenState);
            yield return TimePairs("UNet step [1, 4, 64, 64]", model.Unet, pairs, () => model.Unet.Forward(latents, [1000f], ctx));
        }
        finally { latents.Dispose(); ctx.Dispose(); }
    }

    /// <summary>One profiled call of each network, packing every call then with the packs (made by a warm-up call first).</summary>
    public static IEnumerable<PrepackProfile> Profiles(SdComponents model)
    {
        var (ids, latents, ctx) = Inputs(model);
        try
        {
            foreach (bool packed in new[] { false, true })
            {
                yield return Profile("text encoder [1, 77]", packed, () => model.TextEncoder.Forward(ids, 1).LastHiddenState);
                yield return Profile("UNet step [1, 4, 64, 64]", packed, () => model.Unet.Forward(latents, [1000f], ctx));
            }
        }
        finally { latents.Dispose(); ctx.Dispose(); }
    }

    private static (int[] Ids, Tensor Latents, Tensor Context) Inputs(SdComponents model)
    {
        var ids = Sd15Bench.PromptIds();
        Tensor latents;
        using (var scope = TensorScope.Begin()) latents = new TorchGenerator(1).Randn(1, 4, 64, 64).ClonePersistent();
        Tensor ctx;
        using (var scope = TensorScope.Begin())
        using (GradMode.NoGrad())
            ctx = model.TextEncoder.Forward(ids, 1).LastHiddenState.ClonePersistent();
        return (ids, latents, ctx);
    }

    private static PrepackPairs TimePairs(string stage, Module network, int pairs, Func<Tensor> call)
    {
        var every = new List<double>();
        var once = new List<double>();
        var everyCpu = new List<double>();
        var onceCpu = new List<double>();
        float diff = 0;
        for (int i = 0; i <= pairs; i++)
        {
            var (t0, c0, y0) = TimeCall(call, packed: false);
            var (t1, c1, y1) = TimeCall(call, packed: true);
            for (int j = 0; j < y0.Length; j++) diff = MathF.Max(diff, MathF.Abs(y0[j] - y1[j]));
            // Pair 0 warms up the JIT and the pool and makes the packs.
            if (i > 0) { every.Add(t0); once.Add(t1); everyCpu.Add(c0); onceCpu.Add(c1); }
        }
        return new PrepackPairs(stage, every.ToArray(), once.ToArray(), everyCpu.ToArray(), onceCpu.ToArray(), WeightPacking.PackedBytes(network), diff);
    }

    private static (double Seconds, double CpuSeconds, float[] Output) TimeCall(Func<Tensor> call, bool packed)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        WeightPacks.Bypass = !packed;
        try
        {
            var cpu = Environment.CpuUsage.TotalTime;
            var sw = Stopwatch.StartNew();
            var y = call();
            double s = sw.Elapsed.TotalSeconds;
            return (s, (Environment.CpuUsage.TotalTime - cpu).TotalSeconds, y.ToArray());
        }
        finally { WeightPacks.Bypass = false; }
    }

    private static PrepackProfile Profile(string stage, bool packed, Func<Tensor> call)
    {
        TimeCall(call, packed); // warm-up (and the packs)
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        WeightPacks.Bypass = !packed;
        var profile = new OpProfile();
        var sw = Stopwatch.StartNew();
        try
        {
            using (profile.Start()) call();
        }
        finally { WeightPacks.Bypass = false; }
        return new PrepackProfile(stage, packed, sw.Elapsed.TotalSeconds, profile.Entries());
    }
}
