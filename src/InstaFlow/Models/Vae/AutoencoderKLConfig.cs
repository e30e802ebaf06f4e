// AutoencoderKL configuration (diffusers names), with the SD-1.5 VAE as defaults.
namespace InstaFlow.Models.Vae;

public sealed record AutoencoderKLConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LatentChannels { get; init; } = 4;
    public int[] BlockOutChannels { get; init; } = { 128, 256, 512, 512 };
    public int LayersPerBlock { get; init; } = 2;
    public int NormNumGroups { get; init; } = 32;
    public float ScalingFactor { get; init; } = 0.18215f;
    public int SampleSize { get; init; } = 512;

    /// <summary>Image pixels per latent pixel: 2^(levels-1).</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Length - 1);

    public static AutoencoderKLConfig Load(string path) => From(ConfigFile.Load(path));

    public static AutoencoderKLConfig From(ConfigFile c)
    {
        var d = new AutoencoderKLConfig();
        var cfg = new AutoencoderKLConfig
        {
            InChannels = c.Int("in_channels", 3),
            OutChannels = c.Int("out_channels", 3),
            LatentChannels = c.Int("latent_channels", 4),
            BlockOutChannels = c.Ints("block_out_channels", d.BlockOutChannels),
            LayersPerBlock = c.Int("layers_per_block", 2),
            NormNumGroups = c.Int("norm_num_groups", 32),
            ScalingFactor = c.Float("scaling_factor", 0.18215f),
            SampleSize = c.Int("sample_size", 512),
        };
        int levels = cfg.BlockOutChannels.Length;
        foreach (var t in c.Strings("down_block_types", Enumerable.Repeat("DownEncoderBlock2D", levels).ToArray()))
            c.Require("down_block_types", t == "DownEncoderBlock2D", $"\"{t}\"", "DownEncoderBlock2D");
        foreach (var t in c.Strings("up_block_types", Enumerable.Repeat("UpDecoderBlock2D", levels).ToArray()))
            c.Require("up_block_types", t == "UpDecoderBlock2D", $"\"{t}\"", "UpDecoderBlock2D");
        if (c.Strings("down_block_types", new string[levels]).Length != levels)
            throw new InvalidInputException($"{c.Path}: down_block_types and block_out_channels have different lengths");
        c.Require("act_fn", c.String("act_fn", "silu") == "silu", $"\"{c.String("act_fn", "silu")}\"", "silu");
        c.Require("mid_block_add_attention", c.Bool("mid_block_add_attention", true), "false", "true");
        return cfg;
    }
}
