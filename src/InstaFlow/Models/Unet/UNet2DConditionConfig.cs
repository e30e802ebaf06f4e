// UNet2DConditionModel configuration (diffusers 0.21.4 names), SD-1.5 values as defaults. Values this
// implementation cannot honour are rejected with the key and value named.
namespace InstaFlow.Models.Unet;

public sealed record UNet2DConditionConfig
{
    public int SampleSize { get; init; } = 64;
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public string[] DownBlockTypes { get; init; } = { "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D" };
    public string[] UpBlockTypes { get; init; } = { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D" };
    public string MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    public int[] BlockOutChannels { get; init; } = { 320, 640, 1280, 1280 };
    public int LayersPerBlock { get; init; } = 2;
    public int DownsamplePadding { get; init; } = 1;
    public float MidBlockScaleFactor { get; init; } = 1f;
    public int NormNumGroups { get; init; } = 32;
    public float NormEps { get; init; } = 1e-5f;
    public int CrossAttentionDim { get; init; } = 768;
    /// <summary>Heads per level (diffusers' legacy attention_head_dim means the number of heads).</summary>
    public int[] AttentionHeads { get; init; } = { 8, 8, 8, 8 };
    public int[] TransformerLayersPerBlock { get; init; } = { 1, 1, 1, 1 };
    public bool UseLinearProjection { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    /// <summary>null (SD-1.5) or "text_time" (SDXL: pooled text embeds and size/crop/aesthetic time ids added to the time embedding).</summary>
    public string? AdditionEmbedType { get; init; }
    /// <summary>Sinusoidal channels per time id ("text_time" only).</summary>
    public int AdditionTimeEmbedDim { get; init; }
    /// <summary>Input width of add_embedding: pooled text width + number of time ids * AdditionTimeEmbedDim.</summary>
    public int ProjectionClassEmbeddingsInputDim { get; init; }

    public static UNet2DConditionConfig Load(string path) => From(ConfigFile.Load(path));

    /// <summary>upBlockTypes: the default when the file has none (a ControlNet config: the down path's mirror).</summary>
    public static UNet2DConditionConfig From(ConfigFile c, string[]? upBlockTypes = null)
    {
        var down = c.Strings("down_block_types", new UNet2DConditionConfig().DownBlockTypes);
        int levels = down.Length;
        // num_attention_heads (newer configs) takes precedence; otherwise attention_head_dim holds the head count.
        var heads = c.Has("num_attention_heads") ? c.IntOrList("num_attention_heads", levels, 8) : c.IntOrList("attention_head_dim", levels, 8);
        var cfg = new UNet2DConditionConfig
        {
            SampleSize = c.Int("sample_size", 64),
            InChannels = c.Int("in_channels", 4),
            OutChannels = c.Int("out_channels", 4),
            DownBlockTypes = down,
            UpBlockTypes = c.Strings("up_block_types", upBlockTypes ?? new UNet2DConditionConfig().UpBlockTypes),
            MidBlockType = c.String("mid_block_type", "UNetMidBlock2DCrossAttn")!,
            BlockOutChannels = c.Ints("block_out_channels", new UNet2DConditionConfig().BlockOutChannels),
            LayersPerBlock = c.Int("layers_per_block", 2),
            DownsamplePadding = c.Int("downsample_padding", 1),
            MidBlockScaleFactor = c.Float("mid_block_scale_factor", 1f),
            NormNumGroups = c.Int("norm_num_groups", 32),
            NormEps = c.Float("norm_eps", 1e-5f),
            CrossAttentionDim = c.Int("cross_attention_dim", 768),
            AttentionHeads = heads,
            TransformerLayersPerBlock = c.IntOrList("transformer_layers_per_block", levels, 1),
            UseLinearProjection = c.Bool("use_linear_projection", false),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            FreqShift = c.Int("freq_shift", 0),
            AdditionEmbedType = c.String("addition_embed_type", null),
            AdditionTimeEmbedDim = c.Int("addition_time_embed_dim", 0),
            ProjectionClassEmbeddingsInputDim = c.Int("projection_class_embeddings_input_dim", 0),
        };
        foreach (var t in cfg.DownBlockTypes) c.Require("down_block_types", t is "CrossAttnDownBlock2D" or "DownBlock2D", $"\"{t}\"", "CrossAttnDownBlock2D, DownBlock2D");
        foreach (var t in cfg.UpBlockTypes) c.Require("up_block_types", t is "CrossAttnUpBlock2D" or "UpBlock2D", $"\"{t}\"", "CrossAttnUpBlock2D, UpBlock2D");
        c.Require("mid_block_type", cfg.MidBlockType == "UNetMidBlock2DCrossAttn", $"\"{cfg.MidBlockType}\"", "UNetMidBlock2DCrossAttn");
        if (cfg.BlockOutChannels.Length != levels) throw new InvalidInputException($"{c.Path}: block_out_channels has {cfg.BlockOutChannels.Length} entries but down_block_types has {levels}");
        if (cfg.UpBlockTypes.Length != levels) throw new InvalidInputException($"{c.Path}: up_block_types has {cfg.UpBlockTypes.Length} entries but down_block_types has {levels}");
        c.Require("act_fn", c.String("act_fn", "silu") == "silu", $"\"{c.String("act_fn", "silu")}\"", "silu");
        c.Require("time_embedding_type", c.String("time_embedding_type", "positional") == "positional", $"\"{c.String("time_embedding_type", "")}\"", "positional");
        c.Require("resnet_time_scale_shift", c.String("resnet_time_scale_shift", "default") == "default", $"\"{c.String("resnet_time_scale_shift", "")}\"", "default");
        c.Require("class_embed_type", !c.Has("class_embed_type"), "(set)", "null");
        c.Require("addition_embed_type", cfg.AdditionEmbedType is null or "text_time", $"\"{cfg.AdditionEmbedType}\"", "null, text_time");
        if (cfg.AdditionEmbedType == "text_time" && (cfg.AdditionTimeEmbedDim <= 0 || cfg.AdditionTimeEmbedDim % 2 != 0 || cfg.ProjectionClassEmbeddingsInputDim <= 0))
            throw new InvalidInputException($"{c.Path}: addition_embed_type \"text_time\" needs an even addition_time_embed_dim > 0 and projection_class_embeddings_input_dim > 0 " +
                $"(got {cfg.AdditionTimeEmbedDim} and {cfg.ProjectionClassEmbeddingsInputDim}); SDXL-Refiner uses 256 and 2560");
        c.Require("encoder_hid_dim", !c.Has("encoder_hid_dim"), "(set)", "null");
        c.Require("time_cond_proj_dim", !c.Has("time_cond_proj_dim"), "(set)", "null");
        c.Require("num_class_embeds", !c.Has("num_class_embeds"), "(set)", "null");
        c.Require("only_cross_attention", !c.Bool("only_cross_attention", false), "true", "false");
        c.Require("dual_cross_attention", !c.Bool("dual_cross_attention", false), "true", "false");
        c.Require("upcast_attention", !c.Bool("upcast_attention", false), "true", "false");
        c.Require("conv_in_kernel", c.Int("conv_in_kernel", 3) == 3, c.Int("conv_in_kernel", 3).ToString(), "3");
        c.Require("conv_out_kernel", c.Int("conv_out_kernel", 3) == 3, c.Int("conv_out_kernel", 3).ToString(), "3");
        c.Require("center_input_sample", !c.Bool("center_input_sample", false), "true", "false");
        c.Require("resnet_out_scale_factor", c.Float("resnet_out_scale_factor", 1f) == 1f, c.Float("resnet_out_scale_factor", 1f).ToString(System.Globalization.CultureInfo.InvariantCulture), "1.0");
        for (int i = 0; i < levels; i++)
            if (cfg.BlockOutChannels[i] % cfg.AttentionHeads[i] != 0)
                throw new InvalidInputException($"{c.Path}: block_out_channels[{i}] = {cfg.BlockOutChannels[i]} is not divisible by {cfg.AttentionHeads[i]} attention heads");
        return cfg;
    }
}
