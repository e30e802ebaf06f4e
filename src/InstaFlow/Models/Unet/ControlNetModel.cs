// diffusers ControlNetModel: the UNet's time embedding, conv_in and down/mid path (same names and shapes), plus a
// conditioning embedding of the control image added after conv_in, and zero-initialized 1x1 convs that turn every
// skip and the mid output into residuals for the UNet. There is no up path.
using InstaFlow.Models.Diffusers;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Unet;

/// <summary>Residuals for UNet2DConditionModel.Forward: one per skip (in push order) and one for the mid block.</summary>
public sealed record ControlResiduals(IReadOnlyList<Tensor> Down, Tensor Mid);

public sealed record ControlNetConfig
{
    public required UNet2DConditionConfig Unet { get; init; }
    public int ConditioningChannels { get; init; } = 3;
    public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];
    /// <summary>"rgb", or "bgr" (the control image's channels are flipped first).</summary>
    public string ChannelOrder { get; init; } = "rgb";

    /// <summary>Control image pixels per latent pixel: one stride-2 conv between embedding widths.</summary>
    public int ScaleFactor => 1 << (ConditioningEmbeddingOutChannels.Length - 1);

    public static ControlNetConfig Load(string path)
    {
        var c = ConfigFile.Load(path);
        var down = c.Strings("down_block_types", new UNet2DConditionConfig().DownBlockTypes);
        var mirror = down.Reverse().Select(t => t == "CrossAttnDownBlock2D" ? "CrossAttnUpBlock2D" : "UpBlock2D").ToArray();
        var cfg = new ControlNetConfig
        {
            Unet = UNet2DConditionConfig.From(c, mirror),
            ConditioningChannels = c.Int("conditioning_channels", 3),
            ConditioningEmbeddingOutChannels = c.Ints("conditioning_embedding_out_channels", [16, 32, 96, 256]),
            ChannelOrder = c.String("controlnet_conditioning_channel_order", "rgb")!,
        };
        c.Require("controlnet_conditioning_channel_order", cfg.ChannelOrder is "rgb" or "bgr", $"\"{cfg.ChannelOrder}\"", "rgb, bgr");
        c.Require("global_pool_conditions", !c.Bool("global_pool_conditions", false), "true", "false");
        return cfg;
    }
}

/// <summary>controlnet_cond_embedding: conv_in, SiLU, then (conv, SiLU, stride-2 conv, SiLU) per width step, conv_out.</summary>
public sealed class ControlNetConditioningEmbedding : Module
{
    private readonly Conv2d _convIn, _convOut;
    private readonly Conv2d[] _blocks;

    public ControlNetConditioningEmbedding(int channels, int[] widths, int outChannels)
    {
        _convIn = Child("conv_in", new Conv2d(channels, widths[0], 3, padding: 1));
        var blocks = Child("blocks", new ModuleList());
        var list = new List<Conv2d>();
        for (int i = 0; i + 1 < widths.Length; i++)
        {
            list.Add(blocks.Add(new Conv2d(widths[i], widths[i], 3, padding: 1)));
            list.Add(blocks.Add(new Conv2d(widths[i], widths[i + 1], 3, stride: 2, padding: 1)));
        }
        _blocks = list.ToArray();
        _convOut = Child("conv_out", new Conv2d(widths[^1], outChannels, 3, padding: 1));
    }

    // cond: [B, C, H, W] -> [B, outChannels, H / f, W / f]
    public Tensor Forward(Tensor cond)
    {
        var h = Ops.Silu(_convIn.Forward(cond));
        foreach (var conv in _blocks) h = Ops.Silu(conv.Forward(h));
        return _convOut.Forward(h);
    }
}

public sealed class ControlNetModel : Module
{
    public ControlNetConfig Config { get; }
    public readonly Conv2d ConvIn;
    public readonly TimestepEmbedding TimeEmbedding;
    public readonly ControlNetConditioningEmbedding CondEmbedding;
    public readonly UNetBlock[] DownBlocks;
    public readonly UNetMidBlock2DCrossAttn MidBlock;
    private readonly Conv2d[] _downOut;
    private readonly Conv2d _midOut;

    public Action<string, Tensor>? Hook { get; set; }

    public ControlNetModel(ControlNetConfig config)
    {
        Config = config;
        var c = config.Unet;
        int c0 = c.BlockOutChannels[0], temb = 4 * c0;
        ConvIn = Child("conv_in", new Conv2d(c.InChannels, c0, 3, padding: 1));
        TimeEmbedding = Child("time_embedding", new TimestepEmbedding(c0, temb));
        CondEmbedding = Child("controlnet_cond_embedding", new ControlNetConditioningEmbedding(config.ConditioningChannels, config.ConditioningEmbeddingOutChannels, c0));
        DownBlocks = UNet2DConditionModel.BuildDownBlocks(c, temb, Child("down_blocks", new ModuleList()));
        MidBlock = Child("mid_block", new UNetMidBlock2DCrossAttn(c, c.BlockOutChannels[^1], temb, c.AttentionHeads[^1], c.TransformerLayersPerBlock[^1]));
        // one 1x1 conv per skip, in push order: conv_in's output, every resnet/attention output, every downsampler output
        var outs = Child("controlnet_down_blocks", new ModuleList());
        var down = new List<Conv2d> { outs.Add(new Conv2d(c0, c0, 1)) };
        for (int i = 0; i < DownBlocks.Length; i++)
        {
            int ch = c.BlockOutChannels[i];
            for (int j = 0; j < c.LayersPerBlock; j++) down.Add(outs.Add(new Conv2d(ch, ch, 1)));
            if (i < DownBlocks.Length - 1) down.Add(outs.Add(new Conv2d(ch, ch, 1)));
        }
        _downOut = down.ToArray();
        _midOut = Child("controlnet_mid_block", new Conv2d(c.BlockOutChannels[^1], c.BlockOutChannels[^1], 1));
    }

    /// <summary>
    /// sample: [B, C, h, w]; cond: the control image [1 or B, 3, h*f, w*f] in [0, 1]; residuals scaled by
    /// conditioningScale (a batch-1 control image broadcasts over the batch, as InstaFlow's pipeline relies on).
    /// </summary>
    public ControlResiduals Forward(Tensor sample, float[] timesteps, Tensor context, Tensor cond, float conditioningScale)
    {
        // sample: [B, C, h, w]
        var c = Config.Unet;
        if (Config.ChannelOrder == "bgr") cond = Ops.Concat([Ops.Narrow(cond, 1, 2, 1), Ops.Narrow(cond, 1, 1, 1), Ops.Narrow(cond, 1, 0, 1)], 1);
        // 1. time embedding, as the UNet
        var emb = TimeEmbedding.Forward(TimestepEmbedding.Sinusoidal(timesteps, c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift));
        var embAct = Ops.Silu(emb);
        // 2. conv_in plus the control image's embedding
        var condEmb = CondEmbedding.Forward(cond);
        Hook?.Invoke("controlnet_cond_embedding", condEmb);
        if (condEmb.Dim(2) != sample.Dim(2) || condEmb.Dim(3) != sample.Dim(3))
            throw new ArgumentException($"ControlNet: the control image embeds to {condEmb.Describe()}, the latents are {sample.Describe()}; the image must be {Config.ScaleFactor}x the latent size");
        var h = Ops.Add(ConvIn.Forward(sample), condEmb);
        // 3. down and mid path, collecting skips
        var skips = new List<Tensor> { h };
        for (int i = 0; i < DownBlocks.Length; i++) h = DownBlocks[i].ForwardDown(h, embAct, context, skips, null, $"down_blocks.{i}");
        h = MidBlock.Forward(h, embAct, context);
        // 4. zero convs, scaled
        var down = skips.Select((s, i) => Ops.MulScalar(_downOut[i].Forward(s), conditioningScale)).ToArray();
        return new ControlResiduals(down, Ops.MulScalar(_midOut.Forward(h), conditioningScale));
    }

    /// <summary>A diffusers ControlNetModel folder: config.json and diffusion_pytorch_model.safetensors.</summary>
    public static (ControlNetModel Model, LoadReport Report) Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: ControlNet folder not found (a diffusers ControlNetModel folder: config.json + diffusion_pytorch_model.safetensors)");
        var m = new ControlNetModel(ControlNetConfig.Load(Path.Combine(dir, "config.json")));
        var weights = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
        if (!File.Exists(weights)) throw new FileNotFoundException($"{weights}: ControlNet weights not found", weights);
        var report = StateDictLoader.Load(m, weights, precision: WeightPrecision.Stored);
        m.SetRequiresGrad(false);
        return (m, report);
    }
}
