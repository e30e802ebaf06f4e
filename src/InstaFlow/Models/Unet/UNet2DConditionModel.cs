// diffusers UNet2DConditionModel: sinusoidal time embedding -> conv_in -> down blocks (skips pushed on a stack) ->
// mid block -> up blocks (each resnet consumes one skip) -> GroupNorm, SiLU, conv_out. Knows nothing of samplers.
using InstaFlow.Models.Diffusers;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Unet;

public sealed class UNet2DConditionModel : Module, IDenoiser
{
    public UNet2DConditionConfig Config { get; }
    public readonly TimestepEmbedding TimeEmbedding;
    /// <summary>SDXL's add_embedding (addition_embed_type "text_time"), null otherwise.</summary>
    public readonly TimestepEmbedding? AddEmbedding;
    public readonly Conv2d ConvIn, ConvOut;
    public readonly UNetBlock[] DownBlocks, UpBlocks;
    public readonly UNetMidBlock2DCrossAttn MidBlock;
    public readonly GroupNorm ConvNormOut;

    /// <summary>Receives intermediate outputs under diffusers' module names (for golden tests).</summary>
    public Action<string, Tensor>? Hook { get; set; }

    int IDenoiser.LatentChannels => Config.InChannels;
    int IDenoiser.SampleSize => Config.SampleSize;
    Tensor IDenoiser.Forward(Tensor sample, float[] timesteps, Tensor context) => Forward(sample, timesteps, context);

    public UNet2DConditionModel(UNet2DConditionConfig c)
    {
        Config = c;
        int c0 = c.BlockOutChannels[0], temb = 4 * c0, levels = c.BlockOutChannels.Length;
        ConvIn = Child("conv_in", new Conv2d(c.InChannels, c0, 3, padding: 1));
        TimeEmbedding = Child("time_embedding", new TimestepEmbedding(c0, temb));
        if (c.AdditionEmbedType == "text_time") AddEmbedding = Child("add_embedding", new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim, temb));

        DownBlocks = BuildDownBlocks(c, temb, Child("down_blocks", new ModuleList()));
        MidBlock = Child("mid_block", new UNetMidBlock2DCrossAttn(c, c.BlockOutChannels[^1], temb, c.AttentionHeads[^1], c.TransformerLayersPerBlock[^1]));

        var up = Child("up_blocks", new ModuleList());
        UpBlocks = new UNetBlock[levels];
        var rev = c.BlockOutChannels.Reverse().ToArray();
        var revHeads = c.AttentionHeads.Reverse().ToArray();
        var revLayers = c.TransformerLayersPerBlock.Reverse().ToArray();
        int outCh = rev[0];
        for (int i = 0; i < levels; i++)
        {
            int prevOut = outCh;
            outCh = rev[i];
            int inCh = rev[Math.Min(i + 1, levels - 1)];
            bool last = i == levels - 1;
            bool cross = c.UpBlockTypes[i] == "CrossAttnUpBlock2D";
            UpBlocks[i] = up.Add(UNetBlock.Up(c, inCh, outCh, prevOut, temb, addUpsample: !last, cross, revHeads[i], revLayers[i]));
        }

        ConvNormOut = Child("conv_norm_out", new GroupNorm(c.NormNumGroups, c0, c.NormEps));
        ConvOut = Child("conv_out", new Conv2d(c0, c.OutChannels, 3, padding: 1));
    }

    /// <summary>The down path shared with ControlNetModel: one block per level, a downsampler on all but the last.</summary>
    internal static UNetBlock[] BuildDownBlocks(UNet2DConditionConfig c, int temb, ModuleList list)
    {
        var blocks = new UNetBlock[c.BlockOutChannels.Length];
        int outCh = c.BlockOutChannels[0];
        for (int i = 0; i < blocks.Length; i++)
        {
            int inCh = outCh;
            outCh = c.BlockOutChannels[i];
            bool cross = c.DownBlockTypes[i] == "CrossAttnDownBlock2D";
            blocks[i] = list.Add(UNetBlock.Down(c, inCh, outCh, temb, addDownsample: i < blocks.Length - 1, cross, c.AttentionHeads[i], c.TransformerLayersPerBlock[i]));
        }
        return blocks;
    }

    /// <summary>
    /// sample: [B, Cin, H, W]; timesteps: B floats (InstaFlow passes 1000*(1-t)); context: [B, T, cross_attention_dim];
    /// control: a ControlNet's residuals, added to the skips and to the mid block's output; added: SDXL's
    /// added_cond_kwargs, required when addition_embed_type is "text_time". Returns [B, Cout, H, W].
    /// </summary>
    public Tensor Forward(Tensor sample, float[] timesteps, Tensor context, ControlResiduals? control = null, AddedConditions? added = null)
    {
        // sample: [B, C, H, W]
        ShapeUtil.RequireRank(sample, 4, "UNet2DConditionModel", "sample");
        int b = sample.Dim(0);
        if (sample.Dim(1) != Config.InChannels) throw new ArgumentException($"UNet: sample {sample.Describe()} has {sample.Dim(1)} channels, the config says in_channels = {Config.InChannels}");
        if (timesteps.Length != b) throw new ArgumentException($"UNet: {timesteps.Length} timesteps for a batch of {b}");
        if (context.Rank != 3 || context.Dim(0) != b || context.Dim(2) != Config.CrossAttentionDim)
            throw new ArgumentException($"UNet: encoder_hidden_states {context.Describe()} should be [{b}, T, {Config.CrossAttentionDim}]");
        int upFactor = 1 << UpBlocks.Count(u => u.Upsampler != null);
        bool forwardUpsampleSize = sample.Dim(2) % upFactor != 0 || sample.Dim(3) % upFactor != 0;

        // 1. time embedding
        var tProj = TimestepEmbedding.Sinusoidal(timesteps, Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift);
        Hook?.Invoke("time_proj", tProj);
        var emb = TimeEmbedding.Forward(tProj);
        Hook?.Invoke("time_embedding", emb);
        if (AddEmbedding != null) emb = Ops.Add(emb, AddedConditions.Embed(this, added, b));
        var embAct = Ops.Silu(emb);

        // 2. conv_in and the down path, collecting skips
        var h = ConvIn.Forward(sample);
        Hook?.Invoke("conv_in", h);
        var skips = new List<Tensor> { h };
        for (int i = 0; i < DownBlocks.Length; i++)
        {
            h = DownBlocks[i].ForwardDown(h, embAct, context, skips, Hook, $"down_blocks.{i}");
            Hook?.Invoke($"down_blocks.{i}.0", h);
            Cooperative.ThrowIfCancellationRequested();
        }

        if (control != null)
        {
            if (control.Down.Count != skips.Count)
                throw new ArgumentException($"UNet: the ControlNet gives {control.Down.Count} down residuals for {skips.Count} skips");
            for (int i = 0; i < skips.Count; i++) skips[i] = Ops.Add(skips[i], control.Down[i]);
        }

        // 3. mid block
        h = MidBlock.Forward(h, embAct, context);
        if (control != null) h = Ops.Add(h, control.Mid);
        Hook?.Invoke("mid_block", h);
        Cooperative.ThrowIfCancellationRequested();

        // 4. up path: each block takes as many skips as it has resnets
        for (int i = 0; i < UpBlocks.Length; i++)
        {
            var blk = UpBlocks[i];
            int n = blk.Resnets.Length;
            var res = skips.GetRange(skips.Count - n, n);
            skips.RemoveRange(skips.Count - n, n);
            (int, int)? size = null;
            if (blk.Upsampler != null && forwardUpsampleSize) size = (skips[^1].Dim(2), skips[^1].Dim(3));
            h = blk.ForwardUp(h, res, embAct, context, size);
            Hook?.Invoke($"up_blocks.{i}", h);
            Cooperative.ThrowIfCancellationRequested();
        }

        // 5. output head
        h = ConvNormOut.Forward(h);
        Hook?.Invoke("conv_norm_out", h);
        h = Ops.Silu(h);
        Hook?.Invoke("conv_act", h);
        return ConvOut.Forward(h);
    }
}

/// <summary>time_embedding: linear_1 -> SiLU -> linear_2, over the sinusoidal projection of the timesteps.</summary>
public sealed class TimestepEmbedding : Module
{
    public readonly Linear Linear1, Linear2;

    public TimestepEmbedding(int inChannels, int dim)
    {
        Linear1 = Child("linear_1", new Linear(inChannels, dim));
        Linear2 = Child("linear_2", new Linear(dim, dim));
    }

    public Tensor Forward(Tensor t) => Linear2.Forward(Ops.Silu(Linear1.Forward(t)));

    /// <summary>
    /// diffusers get_timestep_embedding in float32: freqs = exp(-ln(10000) k / (half - shift)), [sin, cos] of t*freqs
    /// (swapped to [cos, sin] when flipSinToCos). Returns [B, dim].
    /// </summary>
    public static Tensor Sinusoidal(float[] timesteps, int dim, bool flipSinToCos, int freqShift)
    {
        int half = dim / 2;
        var freqs = new float[half];
        float lnMax = -(float)Math.Log(10000.0);
        for (int k = 0; k < half; k++)
        {
            // Each step rounds to float32 as torch does: (-ln(1e4) * k) / (half - shift), then exp.
            float e = lnMax * k / (half - freqShift);
            freqs[k] = (float)Math.Exp(e);
        }
        var t = Tensor.Zeros(timesteps.Length, dim);
        for (int b = 0; b < timesteps.Length; b++)
            for (int k = 0; k < half; k++)
            {
                float arg = timesteps[b] * freqs[k];
                float s = MathF.Sin(arg), c = MathF.Cos(arg);
                t[b, k] = flipSinToCos ? c : s;
                t[b, half + k] = flipSinToCos ? s : c;
            }
        return t;
    }
}
