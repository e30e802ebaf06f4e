// ControlNet against the diffusers goldens on the tiny SD-1.5 UNet: the conditioning embedding, every residual, the
// UNet output with and without them, and load errors.
using InstaFlow.IO;
using InstaFlow.Models.Unet;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Models;

public class ControlNetTests
{
    internal static string Dir => Path.Combine(TestUtil.Fixtures, "controlnet");
    internal static readonly Lazy<ControlNetModel> Net = new(() => ControlNetModel.Load(Path.Combine(Dir, "controlnet")).Model);

    // its own copy of the tiny pipeline: attaching the ControlNet changes the model's description
    private static readonly Lazy<InstaFlow.Pipelines.SdComponents> WithControlNet = new(() =>
    {
        var m = InstaFlow.Pipelines.SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));
        m.AttachControlNet(Net.Value, "controlnet");
        return m;
    });

    [Fact]
    public void ControlNet_Golden_ResidualsAndUnetOutput()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "controlnet_b1.safetensors"));
        using var scope = TensorScope.Begin();
        using var _ = GradMode.NoGrad();
        var net = Net.Value;
        var seen = new Dictionary<string, Tensor>();
        net.Hook = (k, t) => seen["debug." + k] = t.Clone();
        var sample = g.ReadF32("sample");
        var t = g.ReadF32("timestep").ToArray();
        var ctx = g.ReadF32("encoder_hidden_states");
        ControlResiduals res;
        try { res = net.Forward(sample, t, ctx, g.ReadF32("controlnet_cond"), 0.8f); }
        finally { net.Hook = null; }
        TestUtil.AssertClose(g.ReadF32("debug.controlnet_cond_embedding"), seen["debug.controlnet_cond_embedding"], 1e-4f, 0, "controlnet_cond_embedding");
        int n = g.Names.Count(x => x.StartsWith("down_block_res_samples.", StringComparison.Ordinal));
        Assert.Equal(n, res.Down.Count);
        for (int i = 0; i < n; i++) TestUtil.AssertClose(g.ReadF32($"down_block_res_samples.{i}"), res.Down[i], 1e-4f, 0, $"down_block_res_samples.{i}");
        TestUtil.AssertClose(g.ReadF32("mid_block_res_sample"), res.Mid, 1e-4f, 0, "mid_block_res_sample");
        var unet = RectifiedFlowPipelineTests.Model.Unet;
        TestUtil.AssertClose(g.ReadF32("unet_out_plain"), unet.Forward(sample, t, ctx), 1e-4f, 0, "unet_out_plain");
        TestUtil.AssertClose(g.ReadF32("unet_out_with_control"), unet.Forward(sample, t, ctx, res), 1e-4f, 0, "unet_out_with_control");
    }

    [Fact]
    public void ControlNet_Config_ScaleFactorFromEmbeddingWidths()
    {
        Assert.Equal(2, Net.Value.Config.ScaleFactor);
        var e = Assert.Throws<DirectoryNotFoundException>(() => ControlNetModel.Load(Path.Combine(Dir, "nope")));
        Assert.Contains("ControlNet folder not found", e.Message);
    }

    [Theory]
    [InlineData("e2e_instaflow_controlnet_n1", "a photo of a cat", null, 1, 1.0f)]
    [InlineData("e2e_instaflow_controlnet_n2_cfg", "a house in the woods", "blurry", 2, 2.5f)]
    public void InstaFlowControlNetPipeline_Golden_MatchesEveryStep(string name, string prompt, string? negative, int steps, float guidance)
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, name + ".safetensors"));
        using var scope = TensorScope.Begin();
        var pipe = new InstaFlow.Pipelines.RectifiedFlowPipeline(WithControlNet.Value);
        var cap = new Dictionary<string, Tensor>();
        pipe.Hook = (k, t) => cap[k] = t.ClonePersistent();
        var shape = g.Info("control_image_u8_hwc").Shape;
        var res = pipe.Generate(new InstaFlow.Pipelines.GenerationRequest
        {
            Prompts = [prompt], NegativePrompts = negative == null ? null : [negative], Steps = steps, Guidance = guidance,
            InitLatents = g.ReadF32("init_latents"), Control = new InstaFlow.Pipelines.ControlImage(g.ReadU8("control_image_u8_hwc"), shape[1], shape[0], 0.8f),
        });
        TestUtil.AssertClose(g.ReadF32("prompt_embeds"), Ops.Narrow(cap["prompt_embeds"], 0, cap["prompt_embeds"].Dim(0) - 1, 1), 2e-4f, 0, "prompt_embeds");
        foreach (var key in g.Names.Where(k => k.StartsWith("debug.step", StringComparison.Ordinal)))
            TestUtil.AssertClose(g.ReadF32(key), cap[key["debug.".Length..]], 2e-4f, 0, key);
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, 2e-4f, 0, "final_latents");
        TestUtil.AssertClose(g.ReadF32("image_raw"), cap["image_raw"], 2e-4f, 0, "image_raw");
        var u8 = g.ReadU8("image_u8_hwc");
        Assert.True(u8.Zip(res.ImagesHwc[0], (a, b) => Math.Abs(a - b)).Max() <= 1, "uint8 image differs by more than 1");
        res.FinalLatents.Dispose();
    }

    [Fact]
    public void Pipeline_ControlImageOfOtherSize_ErrorNamesBothSizes()
    {
        var pipe = new InstaFlow.Pipelines.RectifiedFlowPipeline(WithControlNet.Value);
        var e = Assert.Throws<InvalidInputException>(() => pipe.Generate(new InstaFlow.Pipelines.GenerationRequest
        {
            Prompts = ["a cat"], Width = 32, Height = 32, Control = new InstaFlow.Pipelines.ControlImage(new byte[16 * 16 * 3], 16, 16),
        }));
        Assert.Contains("16x16", e.Message);
        Assert.Contains("32x32", e.Message);
    }

    [Fact]
    public void GenerateCli_ControlNet_WritesImageOfTheControlSize_AndHalfOptionsAreOneLineError()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-control-").FullName;
        try
        {
            using var g = SafeTensors.Open(Path.Combine(Dir, "e2e_instaflow_controlnet_n1.safetensors"));
            var control = Path.Combine(dir, "control.png");
            Png.Write(control, 16, 16, 3, g.ReadU8("control_image_u8_hwc"));
            var tiny = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
            var outPng = Path.Combine(dir, "out.png");
            var (code, _, err) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "--controlnet", Path.Combine(Dir, "controlnet"), "--control-image", control,
                "--control-scale", "0.8", "a photo of a cat", "-o", outPng]);
            Assert.True(code == 0, err);
            var png = Png.Read(outPng);
            Assert.Equal((16, 16), (png.Width, png.Height));
            Assert.Equal("tiny-sd15 (controlnet controlnet)", png.Text["model"]);
            Assert.Equal("0.8", png.Text["control_scale"]);
            InstaFlow.Tests.Cli.CliRunner.AssertUserError(["generate", "--model", tiny, "--controlnet", Path.Combine(Dir, "controlnet"), "a cat", "-o", outPng], "--control-image");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void GenerateCli_JpegControlImage_WritesImageOfTheControlSize_AndGarbageIsOneLineError()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-control-jpeg-").FullName;
        try
        {
            using var g = SafeTensors.Open(Path.Combine(Dir, "e2e_instaflow_controlnet_n1.safetensors"));
            var control = Path.Combine(dir, "control.jpg");
            File.WriteAllBytes(control, InstaFlow.Tests.IO.TestImages.Jpeg(g.ReadU8("control_image_u8_hwc"), 16, 16));
            var tiny = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
            var outPng = Path.Combine(dir, "out.png");
            var (code, _, err) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "--controlnet", Path.Combine(Dir, "controlnet"), "--control-image", control,
                "a photo of a cat", "-o", outPng]);
            Assert.True(code == 0, err);
            var png = Png.Read(outPng);
            Assert.Equal((16, 16), (png.Width, png.Height));

            var garbage = Path.Combine(dir, "garbage.jpg");
            File.WriteAllBytes(garbage, new byte[100]);
            // The model loads (and says so) before the control image is read, so the error is the last line, not the only one.
            var (c2, _, e2) = InstaFlow.Tests.Cli.CliRunner.Run(["generate", "--model", tiny, "--controlnet", Path.Combine(Dir, "controlnet"), "--control-image", garbage,
                "a cat", "-o", outPng]);
            Assert.Equal(2, c2);
            var last = e2.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
            Assert.StartsWith("error: ", last);
            Assert.Contains(garbage, last);
            Assert.Contains(ImageFile.SupportedFormats, last);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
