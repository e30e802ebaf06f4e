// SDXL-Refiner modules against diffusers 0.21.4 / transformers goldens (../shared/fixtures/sdxl_refiner): the
// CLIPTextModelWithProjection, the "text_time" UNet with its added conditions, and the refiner's VAE.
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tests.Models;

public class RefinerModelGoldenTests
{
    internal static string Dir => Path.Combine(TestUtil.Fixtures, "sdxl_refiner");
    internal static string Tiny => Path.Combine(Dir, "tiny-refiner");

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

    [Fact]
    public void TextEncoder2_Golden_MatchesReference()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Path.Combine(Dir, "text_encoder_2.safetensors"));
        var m = ClipTextModelWithProjection.FromConfig(Path.Combine(Tiny, "text_encoder_2", "config.json"));
        StateDictLoader.Load(m, Path.Combine(Tiny, "text_encoder_2", "model.safetensors"), ignoredKeys: ClipTextModel.IgnoredKeys);
        var cap = new Dictionary<string, Tensor>();
        m.TextModel.Hook = (k, t) => cap[k] = t;
        var o = m.Forward(g.ReadI64("input_ids").Select(x => (int)x).ToArray(), 2);
        TestUtil.AssertClose(g.ReadF32("penultimate_hidden_state"), o.Penultimate, 2e-5f, what: "penultimate_hidden_state");
        TestUtil.AssertClose(g.ReadF32("last_hidden_state"), o.LastHiddenState, 2e-5f, what: "last_hidden_state");
        TestUtil.AssertClose(g.ReadF32("text_embeds"), o.TextEmbeds, 1e-5f, what: "text_embeds");
        for (int i = 0; i <= m.Config.NumHiddenLayers; i++)
            TestUtil.AssertClose(g.ReadF32($"debug.hidden_states.{i}"), cap[$"hidden_states.{i}"], 2e-5f, what: $"hidden_states.{i}");
    }

    [Fact]
    public void Tokenizer2_PadsWithExclamationMark_MatchesGoldenIds()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "img2img_a.safetensors"));
        var tok = ClipTokenizer.FromDirectory(Path.Combine(Tiny, "tokenizer_2"));
        Assert.Equal(0, tok.PadId);
        var ids = tok.Tokenize("A high-resolution photograph of a waterfall in autumn; muted tone").Ids;
        Assert.Equal(g.ReadI64("prompt_input_ids").Select(x => (int)x), ids);
        Assert.Equal(g.ReadI64("negative_input_ids").Select(x => (int)x), tok.Tokenize("").Ids);
    }

    [Fact]
    public void UnetTextTime_Golden_MatchesReference()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Path.Combine(Dir, "unet.safetensors"));
        var m = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(Tiny, "unet", "config.json")));
        StateDictLoader.Load(m, Path.Combine(Tiny, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal([2, 2, 2, 2], m.Config.TransformerLayersPerBlock);
        var cap = new Dictionary<string, Tensor>();
        m.Hook = (k, t) => cap[k] = t;
        var added = new AddedConditions(g.ReadF32("text_embeds"), g.ReadF32("time_ids"));
        var outp = m.Forward(g.ReadF32("sample"), g.ReadF32("timestep").ToArray(), g.ReadF32("encoder_hidden_states"), added: added);
        TestUtil.AssertClose(g.ReadF32("out"), outp, 5e-5f, what: "out");
        CompareDebug(g, cap, 5e-5f);
    }

    [Fact]
    public void UnetTextTime_WithoutAddedConditions_Throws()
    {
        using var scope = TensorScope.Begin();
        var m = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(Tiny, "unet", "config.json")));
        var e = Assert.Throws<ArgumentException>(() => m.Forward(Tensor.Zeros(1, 4, 8, 8), [1f], Tensor.Zeros(1, 77, 16)));
        Assert.Contains("text_time", e.Message);
    }

    [Fact]
    public void RefinerVae_Golden_MatchesReference()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        using var g = SafeTensors.Open(Path.Combine(Dir, "vae.safetensors"));
        var m = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(Tiny, "vae", "config.json")));
        StateDictLoader.Load(m, Path.Combine(Tiny, "vae", "diffusion_pytorch_model.safetensors"));
        Assert.Equal(0.13025f, m.Config.ScalingFactor);
        var (mean, logvar) = m.Encode(g.ReadF32("image"));
        TestUtil.AssertClose(g.ReadF32("mean"), mean, 2e-4f, what: "mean");
        TestUtil.AssertClose(g.ReadF32("logvar"), logvar, 5e-5f, what: "logvar");
        TestUtil.AssertClose(g.ReadF32("std"), Ops.Exp(Ops.MulScalar(logvar, 0.5f)), 1e-5f, what: "std");
        TestUtil.AssertClose(g.ReadF32("decoded"), m.Decode(g.ReadF32("latents")), 5e-5f, what: "decoded");
    }

    [Fact]
    public void RefinerComponents_TinyFolder_LoadsEveryPart()
    {
        using var scope = TensorScope.Begin();
        using var r = RefinerComponents.Load(Tiny);
        Assert.True(r.RequiresAestheticsScore);
        Assert.False(r.ForceZerosForEmptyPrompt);
        Assert.Equal("EulerDiscreteScheduler", r.SchedulerConfig.ClassName);
        Assert.Equal(16, r.TextEncoder.ProjectionDim);
    }
}
