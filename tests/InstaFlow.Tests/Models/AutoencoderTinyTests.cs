// TAESD (diffusers AutoencoderTiny) against the goldens: encode and decode with their layer intermediates, and the
// 8-bit latent round trip (scale, quantize, unscale, decode); the config's scale factor and load errors.
using InstaFlow.IO;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Models;

public class AutoencoderTinyTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "taesd");
    private static readonly Lazy<AutoencoderTiny> Taesd = new(() => AutoencoderTiny.Load(Dir).Model);

    private static Dictionary<string, Tensor> Capture(AutoencoderTiny m)
    {
        var seen = new Dictionary<string, Tensor>();
        m.Hook = (name, t) => seen["debug." + name] = t.Clone();
        return seen;
    }

    [Theory]
    [InlineData("encode", "image", "latents")]
    [InlineData("decode", "latents", "sample")]
    public void EncodeDecode_Golden_MatchesOutputAndLayers(string file, string input, string output)
    {
        using var golden = SafeTensors.Open(Path.Combine(Dir, file + ".safetensors"));
        using var scope = TensorScope.Begin();
        var m = Taesd.Value;
        var seen = Capture(m);
        try
        {
            var x = golden.ReadF32(input);
            TestUtil.AssertClose(golden.ReadF32(output), file == "encode" ? m.Encode(x) : m.Decode(x), 1e-4f, 0, output);
            foreach (var name in golden.Names.Where(n => n.StartsWith("debug.", StringComparison.Ordinal)))
                TestUtil.AssertClose(golden.ReadF32(name), seen[name], 1e-4f, 0, name);
        }
        finally { m.Hook = null; }
    }

    [Fact]
    public void Roundtrip_Golden_ScalesQuantizesAndDecodes()
    {
        using var golden = SafeTensors.Open(Path.Combine(Dir, "forward_roundtrip.safetensors"));
        using var scope = TensorScope.Begin();
        var m = Taesd.Value;
        var latents = m.Encode(golden.ReadF32("image"));
        TestUtil.AssertClose(golden.ReadF32("latents"), latents, 1e-4f, 0, "latents");
        var scaled = m.ScaleLatents(latents);
        TestUtil.AssertClose(golden.ReadF32("scaled_latents"), scaled, 1e-5f, 0, "scaled_latents");
        var u8 = scaled.ToArray().Select(v => (byte)MathF.Round(v * 255f, MidpointRounding.ToEven)).ToArray();
        Assert.Equal(golden.RawBytes("latents_u8").ToArray(), u8);
        var unscaled = m.UnscaleLatents(Tensor.FromArray(u8.Select(b => b / 255f).ToArray(), scaled.ShapeArray()));
        TestUtil.AssertClose(golden.ReadF32("unscaled_latents"), unscaled, 1e-5f, 0, "unscaled_latents");
        TestUtil.AssertClose(golden.ReadF32("sample"), m.Decode(unscaled), 1e-4f, 0, "sample");
    }

    [Fact]
    public void Config_FourLevels_ScaleFactorEight()
    {
        Assert.Equal(8, Taesd.Value.Config.ScaleFactor);
        Assert.Equal(8, new AutoencoderTinyConfig().ScaleFactor);
    }

    [Fact]
    public void Load_MissingFolder_ErrorNamesIt()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => AutoencoderTiny.Load(Path.Combine(Dir, "nope")));
        Assert.Contains("TAESD folder not found", e.Message);
    }

    [Fact]
    public void Pipeline_DecodeWithTaesd_ImageIsTaesdDecodeOfTheFinalLatents()
    {
        using var parts = InstaFlow.Pipelines.SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));
        // the tiny VAE has 2 levels (factor 2), so a 2-level TAESD reads its latents
        var tiny = new AutoencoderTiny(new AutoencoderTinyConfig { EncoderBlockOutChannels = [8, 8], DecoderBlockOutChannels = [8, 8], NumEncoderBlocks = [1, 1], NumDecoderBlocks = [1, 1] });
        tiny.InitDefault(5);
        parts.DecodeWith(tiny);
        var res = new InstaFlow.Pipelines.RectifiedFlowPipeline(parts).Generate(new InstaFlow.Pipelines.GenerationRequest { Prompts = ["a cat"], Seed = 3 });
        using var scope = TensorScope.Begin();
        using var _ = InstaFlow.Tensors.Autograd.GradMode.NoGrad();
        var expected = ImageTensors.ToUint8Hwc(tiny.Decode(res.FinalLatents))[0];
        res.FinalLatents.Dispose();
        Assert.Equal(expected, res.ImagesHwc[0]);
    }

    [Fact]
    public void Pipeline_TaesdOfOtherScale_ErrorNamesBothFactors()
    {
        using var parts = InstaFlow.Pipelines.SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));
        var e = Assert.Throws<InvalidInputException>(() => parts.DecodeWith(Taesd.Value));
        Assert.Contains("1/8", e.Message);
        Assert.Contains("1/2", e.Message);
        InstaFlow.Tests.Cli.CliRunner.AssertUserError(["generate", "--model", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--taesd", Dir, "a cat", "-o", Path.Combine(Path.GetTempPath(), "never.png")], "1/8", "TAESD");
    }
}
