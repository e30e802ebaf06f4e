// LoRA against the diffusers goldens on the tiny SD-1.5 pipeline: kohya and diffusers files give the fused UNet and
// text-encoder outputs at scales 1.0 and 0.7, the update matrices themselves, the InstaFlow image with text and UNet
// scales set apart (the reference's kwargs behaviour), and clear errors for foreign files.
using InstaFlow.IO;
using InstaFlow.Models.Lora;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Tests.Models;

public class LoraTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "lora");
    private static string Kohya => Path.Combine(Dir, "kohya_lora.safetensors");
    private static string Diffusers => Path.Combine(Dir, "diffusers_lora", "pytorch_lora_weights.safetensors");
    private static SdComponents Fresh() => SdComponents.Load(Path.Combine(TestUtil.Fixtures, "tiny-sd15"));

    private static void Apply(SdComponents m, string file, float unetScale, float textScale) =>
        Lora.Merge(Lora.Read(file, m.TextEncoder, m.Unet), m.TextEncoder, m.Unet, unetScale, textScale);

    [Theory]
    [InlineData("kohya", 1.0f, "out_scale1.0")]
    [InlineData("kohya", 0.7f, "out_fused0.7")]
    [InlineData("kohya", 0.7f, "out_scale0.7")]
    [InlineData("diffusers", 0.7f, "out_fused0.7")]
    [InlineData("diffusers", 1.0f, "out_scale1.0")]
    public void Unet_MergedLora_MatchesGolden(string format, float scale, string output)
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, $"unet_lora_{format}.safetensors"));
        using var m = Fresh();
        using var scope = TensorScope.Begin();
        using var _ = GradMode.NoGrad();
        float[] t = g.ReadF32("timestep").ToArray();
        var sample = g.ReadF32("sample");
        float[] timesteps = t.Length == sample.Dim(0) ? t : Enumerable.Repeat(t[0], sample.Dim(0)).ToArray();
        TestUtil.AssertClose(g.ReadF32("out_base"), m.Unet.Forward(sample, timesteps, g.ReadF32("encoder_hidden_states")), 1e-4f, 0, "out_base");
        Apply(m, format == "kohya" ? Kohya : Diffusers, scale, 1f);
        TestUtil.AssertClose(g.ReadF32(output), m.Unet.Forward(sample, timesteps, g.ReadF32("encoder_hidden_states")), 1e-4f, 0, $"{format} {output}");
    }

    [Theory]
    [InlineData("kohya")]
    [InlineData("diffusers")]
    public void TextEncoder_MergedLora_MatchesGolden(string format)
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, $"text_encoder_lora_{format}.safetensors"));
        var ids = g.ReadI64("input_ids").Select(v => (int)v).ToArray();
        int batch = g.Info("input_ids").Shape[0];
        using var m = Fresh();
        Apply(m, format == "kohya" ? Kohya : Diffusers, 1f, 0.7f);
        using var scope = TensorScope.Begin();
        using var _ = GradMode.NoGrad();
        var (hidden, pooled) = m.TextEncoder.Forward(ids, batch);
        TestUtil.AssertClose(g.ReadF32("last_hidden_state_fused0.7"), hidden, 1e-4f, 0, $"{format} last_hidden_state_fused0.7");
        TestUtil.AssertClose(g.ReadF32("pooler_output_scale0.7"), pooled, 1e-4f, 0, $"{format} pooler_output_scale0.7");
    }

    [Fact]
    public void Kohya_UpdateMatrices_MatchDeltaW()
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "unet_lora_kohya.safetensors"));
        using var m = Fresh();
        var updates = Lora.Read(Kohya, m.TextEncoder, m.Unet);
        Assert.Equal(60, updates.Count);
        using var scope = TensorScope.Begin();
        foreach (var name in g.Names.Where(n => n.StartsWith("debug.delta_W.", StringComparison.Ordinal)))
        {
            var kohya = name["debug.delta_W.".Length..];
            var u = updates.Single(x => (x.Component == Lora.Unet ? "lora_unet_" : "lora_te_") + x.ModulePath.Replace('.', '_') == kohya);
            Assert.Equal(0.75f, u.Factor);
            var delta = Ops.MulScalar(Ops.MatMul(u.Up, u.Down), u.Factor);
            TestUtil.AssertClose(g.ReadF32(name), delta, 1e-6f, 0, name);
        }
    }

    [Theory]
    [InlineData("kwargs07", 1.0f)]
    [InlineData("fused07", 0.7f)]
    public void InstaFlowPipeline_KohyaLora_MatchesGolden(string variant, float unetScale)
    {
        using var g = SafeTensors.Open(Path.Combine(Dir, "e2e_instaflow_lora_kohya.safetensors"));
        using var m = Fresh();
        // the reference pipeline applies cross_attention_kwargs' scale to the text encoder only
        Apply(m, Kohya, unetScale, 0.7f);
        using var scope = TensorScope.Begin();
        var pipe = new RectifiedFlowPipeline(m);
        var cap = new Dictionary<string, Tensor>();
        pipe.Hook = (k, t) => cap[k] = t.ClonePersistent();
        var res = pipe.Generate(new GenerationRequest { Prompts = ["a photo of a cat", "an astronaut riding a horse on mars, oil painting"], Steps = 1, InitLatents = g.ReadF32("init_latents") });
        TestUtil.AssertClose(g.ReadF32($"{variant}.prompt_embeds"), cap["prompt_embeds"], 2e-4f, 0, $"{variant}.prompt_embeds");
        TestUtil.AssertClose(g.ReadF32($"{variant}.v_pred"), cap["step0.v_pred"], 2e-4f, 0, $"{variant}.v_pred");
        TestUtil.AssertClose(g.ReadF32($"{variant}.final_latents"), res.FinalLatents, 2e-4f, 0, $"{variant}.final_latents");
        TestUtil.AssertClose(g.ReadF32($"{variant}.image_raw"), cap["image_raw"], 2e-4f, 0, $"{variant}.image_raw");
        res.FinalLatents.Dispose();
    }

    [Fact]
    public void Read_TransposedUpMatrix_RefusedNamingFileAndKey()
    {
        using var m = Fresh();
        using var scope = TensorScope.Begin();
        string bad = Path.Combine(Path.GetTempPath(), $"lora-transposed-{Guid.NewGuid():N}.safetensors");
        string? transposed = null;
        var tensors = new List<(string, Tensor)>();
        using (var f = SafeTensors.Open(Kohya))
            foreach (var name in f.Names)
            {
                var t = f.ReadF32(name);
                // the first linear up matrix [out, rank] stored as [rank, out]: same element count, wrong shape
                if (transposed == null && name.EndsWith(".lora_up.weight", StringComparison.Ordinal) && t.Rank == 2 && t.Dim(0) != t.Dim(1))
                {
                    transposed = name;
                    t = t.Reshape(t.Dim(1), t.Dim(0));
                }
                tensors.Add((name, t));
            }
        Assert.NotNull(transposed);
        try
        {
            SafeTensors.Save(bad, tensors);
            var e = Assert.Throws<InvalidInputException>(() => Lora.Read(bad, m.TextEncoder, m.Unet));
            Assert.Contains(bad, e.Message);
            Assert.Contains(transposed, e.Message);
            Assert.Contains("transposed", e.Message);
        }
        finally { File.Delete(bad); }
    }

    [Fact]
    public void Read_ForeignFile_ErrorNamesTheKey()
    {
        using var m = Fresh();
        var e = Assert.Throws<InvalidInputException>(() => Lora.Read(Path.Combine(TestUtil.Fixtures, "tiny-sd15", "unet", "diffusion_pytorch_model.safetensors"), m.TextEncoder, m.Unet));
        Assert.Contains("neither a kohya", e.Message);
        Assert.Throws<FileNotFoundException>(() => Lora.Read(Path.Combine(Dir, "nope.safetensors"), m.TextEncoder, m.Unet));
    }

    [Fact]
    public void GenerateCli_WithLora_ChangesTheImage_AndBadFileIsOneLineError()
    {
        var tiny = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
        var dir = Directory.CreateTempSubdirectory("instaflow-lora-").FullName;
        try
        {
            string[] common = ["generate", "--model", tiny, "a photo of a cat", "--seed", "1"];
            var (c0, _, e0) = InstaFlow.Tests.Cli.CliRunner.Run([.. common, "-o", Path.Combine(dir, "base.png")]);
            var (c1, _, e1) = InstaFlow.Tests.Cli.CliRunner.Run([.. common, "--lora", Kohya, "--lora-scale", "0.7", "-o", Path.Combine(dir, "lora.png")]);
            Assert.True(c0 == 0 && c1 == 0, e0 + e1);
            Assert.Contains("merged LoRA kohya_lora.safetensors: 60 layers", e1);
            Assert.NotEqual(Png.Read(Path.Combine(dir, "base.png")).Pixels, Png.Read(Path.Combine(dir, "lora.png")).Pixels);
            Assert.Equal("tiny-sd15 (lora kohya_lora.safetensors x0.7)", Png.Read(Path.Combine(dir, "lora.png")).Text["model"]);
            InstaFlow.Tests.Cli.CliRunner.AssertUserError([.. common, "--lora", Path.Combine(dir, "base.png"), "-o", Path.Combine(dir, "x.png")], "base.png");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
