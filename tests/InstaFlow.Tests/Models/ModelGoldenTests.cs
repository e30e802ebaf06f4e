// Text encoder, UNet and VAE forwards against the Python reference goldens in ../shared/fixtures/io, including
// every debug.* intermediate the golden file holds.
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tests.Models;

public class ModelGoldenTests
{
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    private static string Io(string f) => Path.Combine(TestUtil.Fixtures, "io", f);

    internal static ClipTextModel LoadText()
    {
        var m = new ClipTextModel(ClipTextConfig.Load(Path.Combine(Tiny, "text_encoder", "config.json")));
        StateDictLoader.Load(m, Path.Combine(Tiny, "text_encoder", "model.safetensors"), ignoredKeys: ClipTextModel.IgnoredKeys);
        return m;
    }

    internal static UNet2DConditionModel LoadUnet(string file = "diffusion_pytorch_model.safetensors", WeightPrecision precision = WeightPrecision.Float32)
    {
        var m = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(Tiny, "unet", "config.json")));
        StateDictLoader.Load(m, Path.Combine(Tiny, "unet", file), precision: precision);
        return m;
    }

    internal static AutoencoderKL LoadVae()
    {
        var m = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(Tiny, "vae", "config.json")));
        StateDictLoader.Load(m, Path.Combine(Tiny, "vae", "diffusion_pytorch_model.safetensors"));
        return m;
    }

    /// <summary>Compares every `debug.` golden with what the hook captured; a golden we never produced fails.</summary>
    private static void CompareDebug(SafeTensorsFile golden, Dictionary<string, Tensor> captured, float atol)
    {
        int n = 0;
        foreach (var name in golden.Names.Where(x => x.StartsWith("debug.")))
        {
            var key = name["debug.".Length..];
            Assert.True(captured.ContainsKey(key), $"intermediate {key} was not produced");
            TestUtil.AssertClose(golden.ReadF32(name), captured[key], atol, what: name);
            n++;
        }
        Assert.True(n > 0, "golden file has no debug tensors");
    }

    private static Action<string, Tensor> Capture(Dictionary<string, Tensor> into) => (k, t) => into[k] = t;

    [Fact]
    public void ClipTextModel_Golden_MatchesReference()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Io("text_encoder.safetensors"));
        var m = LoadText();
        var ids = g.ReadI64("input_ids").Select(x => (int)x).ToArray();
        var cap = new Dictionary<string, Tensor>();
        m.TextModel.Hook = Capture(cap);
        var (last, pooled) = m.Forward(ids, 2);
        TestUtil.AssertClose(g.ReadF32("last_hidden_state"), last, 1e-4f, what: "last_hidden_state");
        TestUtil.AssertClose(g.ReadF32("pooler_output"), pooled, 1e-4f, what: "pooler_output");
        CompareDebug(g, cap, 1e-4f);
    }

    [Theory]
    [InlineData("unet_b2.safetensors", "diffusion_pytorch_model.safetensors")]
    [InlineData("unet_b1_nonsquare.safetensors", "diffusion_pytorch_model.safetensors")]
    [InlineData("unet_b1_oddsize.safetensors", "diffusion_pytorch_model.safetensors")]
    [InlineData("unet_b2_fp16weights.safetensors", "diffusion_pytorch_model.fp16.safetensors")]
    [InlineData("unet_b2_fp16weights.safetensors", "diffusion_pytorch_model.fp16.safetensors", WeightPrecision.Stored)]
    public void Unet_Golden_MatchesReference(string golden, string weights, WeightPrecision precision = WeightPrecision.Float32)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Io(golden));
        var m = LoadUnet(weights, precision);
        if (precision == WeightPrecision.Stored) Assert.Equal(TensorDType.F16, m.ConvIn.Weight.Value.DType);
        var cap = new Dictionary<string, Tensor>();
        m.Hook = Capture(cap);
        var outp = m.Forward(g.ReadF32("sample"), g.ReadF32("timestep").ToArray(), g.ReadF32("encoder_hidden_states"));
        TestUtil.AssertClose(g.ReadF32("out"), outp, 1e-4f, what: "out");
        if (g.Names.Any(x => x.StartsWith("debug."))) CompareDebug(g, cap, 2e-4f);
    }

    [Theory]
    [InlineData("vae_decode.safetensors")]
    [InlineData("vae_decode_nonsquare.safetensors")]
    public void VaeDecode_Golden_MatchesReference(string golden)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Io(golden));
        var m = LoadVae();
        var cap = new Dictionary<string, Tensor>();
        m.Hook = Capture(cap);
        var img = m.Decode(g.ReadF32("latents"));
        TestUtil.AssertClose(g.ReadF32("image"), img, 2e-4f, what: "image");
        if (g.Names.Any(x => x.StartsWith("debug."))) CompareDebug(g, cap, 2e-4f);
    }

    [Fact]
    public void VaeEncode_Golden_MatchesReference()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Io("vae_encode.safetensors"));
        var m = LoadVae();
        var cap = new Dictionary<string, Tensor>();
        m.Hook = Capture(cap);
        var (mean, logvar) = m.Encode(g.ReadF32("image"));
        TestUtil.AssertClose(g.ReadF32("mean"), mean, 2e-4f, what: "mean");
        TestUtil.AssertClose(g.ReadF32("logvar"), logvar, 2e-4f, what: "logvar");
        CompareDebug(g, cap, 2e-4f);
    }

    [Fact]
    public void VaeLegacyNames_LoadedWithRename_DecodeMatchesGolden()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Io("vae_decode.safetensors"));
        var m = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(Tiny, "vae", "config.json")));
        var report = StateDictLoader.Load(m, Path.Combine(Tiny, "vae", "diffusion_pytorch_model.legacy.safetensors"), AutoencoderKL.RenameLegacyKey);
        Assert.True(report.IsComplete, report.Describe());
        TestUtil.AssertClose(g.ReadF32("image"), m.Decode(g.ReadF32("latents")), 2e-4f, what: "image from legacy-named weights");
    }

    [Fact]
    public void VaeLegacyNames_WithoutRename_ReportsMissingAndUnexpectedKeys()
    {
        var m = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(Tiny, "vae", "config.json")));
        var e = Assert.Throws<InvalidInputException>(() => StateDictLoader.Load(m, Path.Combine(Tiny, "vae", "diffusion_pytorch_model.legacy.safetensors")));
        Assert.Contains("missing keys", e.Message);
        Assert.Contains("unexpected keys", e.Message);
        Assert.Contains("attentions.0.to_q.weight", e.Message);
    }
}
