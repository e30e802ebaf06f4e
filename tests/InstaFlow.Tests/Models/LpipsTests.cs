// LPIPS (VGG16, v0.1) against the lpips-package goldens: every intermediate of pair 0, the odd-sized pair 1, both
// weight namings, clear errors for missing weights, and the gradient with respect to an input by finite differences.
using InstaFlow.IO;
using InstaFlow.Models.Lpips;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Models;

public class LpipsTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "lpips");
    private static readonly Lazy<Lpips> Release = new(() => Lpips.Load(Path.Combine(Dir, "vgg16_features.safetensors"), Path.Combine(Dir, "lpips_vgg_v0.1_lin.safetensors")).Model);

    private static void AssertOutputs(SafeTensorsFile golden, LpipsResult r)
    {
        for (int k = 0; k < 5; k++)
        {
            var g = golden.ReadF32($"lpips_per_layer.{k}");
            TestUtil.AssertClose(g.Span, r.PerLayer[k].Span, 1e-6f, 1e-5f, $"lpips_per_layer.{k}");
        }
        TestUtil.AssertClose(golden.ReadF32("lpips").Span, r.Value.Span, 1e-6f, 1e-5f, "lpips");
        Assert.Equal(golden.ReadF32("lpips").ShapeArray(), r.Value.ShapeArray());
    }

    [Fact]
    public void Lpips_Pair0_MatchesEveryGoldenIntermediate()
    {
        using var golden = SafeTensors.Open(Path.Combine(Dir, "lpips_pair0.safetensors"));
        using var scope = TensorScope.Begin();
        var r = Release.Value.Forward(golden.ReadF32("in0"), golden.ReadF32("in1"), keepDebug: true);
        AssertOutputs(golden, r);
        foreach (var name in golden.Names.Where(n => n.StartsWith("debug.", StringComparison.Ordinal)))
        {
            float atol = name.StartsWith("debug.diff", StringComparison.Ordinal) ? 2e-4f : name.StartsWith("debug.lin_out", StringComparison.Ordinal) ? 1e-5f : 1e-4f;
            Assert.True(r.Debug.ContainsKey(name), $"no intermediate {name}");
            TestUtil.AssertClose(golden.ReadF32(name), r.Debug[name], atol, 0, name);
        }
        Assert.Equal(Lpips.Shift, golden.ReadF32("scaling_layer.shift").ToArray());
        Assert.Equal(Lpips.Scale, golden.ReadF32("scaling_layer.scale").ToArray());
    }

    [Fact]
    public void Lpips_Pair1OddSize_MatchesGolden()
    {
        using var golden = SafeTensors.Open(Path.Combine(Dir, "lpips_pair1.safetensors"));
        using var scope = TensorScope.Begin();
        AssertOutputs(golden, Release.Value.Forward(golden.ReadF32("in0"), golden.ReadF32("in1")));
    }

    [Fact]
    public void Lpips_StateDictNaming_LoadsTheSameWeights()
    {
        var (sd, report) = Lpips.Load(Path.Combine(Dir, "lpips_state_dict.safetensors"));
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(new[] { 8, 16, 32, 64, 64 }, sd.TapChannels);
        var a = Release.Value.NamedParameters().ToDictionary(p => p.Name, p => p.Param.Value.ToArray());
        foreach (var (name, p) in sd.NamedParameters()) Assert.Equal(a[name], p.Value.ToArray());
    }

    [Fact]
    public void Lpips_LinWeightsMissing_ErrorNamesTheKeys()
    {
        var e = Assert.ThrowsAny<Exception>(() => Lpips.Load(Path.Combine(Dir, "vgg16_features.safetensors")));
        Assert.Contains("lin0.model.1.weight", e.Message);
        var e2 = Assert.Throws<InvalidInputException>(() => Lpips.Load(Path.Combine(Dir, "lpips_vgg_v0.1_lin.safetensors")));
        Assert.Contains("features.0.weight", e2.Message);
        Assert.Throws<FileNotFoundException>(() => Lpips.Load(Path.Combine(Dir, "nope.safetensors")));
    }

    // Positive weights and inputs keep every ReLU in its linear part and make max-pool ties unlikely, so the
    // function is smooth where it is probed and a central difference is accurate.
    [Fact]
    public void Lpips_GradientWithRespectToInput_MatchesFiniteDifference()
    {
        var model = new Lpips([4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8]);
        model.InitDefault(3);
        foreach (var p in model.Parameters()) foreach (ref var v in p.Value.Span) v = MathF.Abs(v);
        model.SetRequiresGrad(false);
        using var scope = TensorScope.Begin();
        var rng = new InstaFlow.Tensors.Random.TorchGenerator(11);
        float[] Positive(int n) => rng.Randn(n).ToArray().Select(v => 0.2f + 0.3f * MathF.Abs(v)).ToArray();
        var a = Tensor.FromArray(Positive(3 * 32 * 32), 1, 3, 32, 32);
        var b = Tensor.FromArray(Positive(3 * 32 * 32), 1, 3, 32, 32);
        a.RequiresGrad = true;
        model.Forward(a, b).Value.Backward();
        var grad = a.Grad!.ToArray();
        var dir = rng.Randn(3 * 32 * 32).ToArray();
        double analytic = grad.Zip(dir, (g, d) => (double)g * d).Sum();
        double L(float eps)
        {
            using var s = TensorScope.Begin();
            using var _ = InstaFlow.Tensors.Autograd.GradMode.NoGrad();
            var x = Tensor.FromArray(a.ToArray().Zip(dir, (v, d) => v + eps * d).ToArray(), 1, 3, 32, 32);
            return model.Forward(x, b).Value.Item();
        }
        double numeric = (L(1e-3f) - L(-1e-3f)) / 2e-3;
        Assert.True(Math.Abs(analytic - numeric) <= 1e-2 * Math.Abs(numeric) + 1e-6,
            $"directional derivative: analytic {analytic}, finite difference {numeric}, diff {Math.Abs(analytic - numeric)}");
    }
}
