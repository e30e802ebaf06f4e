// diffusers AutoencoderKL: encoder (-> quant_conv -> mean/logvar) and decoder (post_quant_conv -> ... -> image).
// Every GroupNorm in the VAE uses eps 1e-6; the mid block has single-head self-attention over H*W positions.
using InstaFlow.Models.Diffusers;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Models.Vae;

public sealed class AutoencoderKL : Module, ILatentDecoder, ILatentEncoder
{
    public const float Eps = 1e-6f;
    public AutoencoderKLConfig Config { get; }
    public readonly VaeEncoder Encoder;
    public readonly VaeDecoder Decoder;
    public readonly Conv2d QuantConv, PostQuantConv;

    public Action<string, Tensor>? Hook { get => Encoder.Hook; set { Encoder.Hook = value; Decoder.Hook = value; } }

    int ILatentDecoder.LatentChannels => Config.LatentChannels;
    int ILatentDecoder.ScaleFactor => Config.ScaleFactor;
    float ILatentDecoder.ScalingFactor => Config.ScalingFactor;
    int ILatentEncoder.LatentChannels => Config.LatentChannels;
    int ILatentEncoder.ScaleFactor => Config.ScaleFactor;

    /// <summary>The posterior mean times scaling_factor: the latents a sampler ends in for this image.</summary>
    public Tensor EncodeLatents(Tensor image) => Ops.MulScalar(Encode(image).Mean, Config.ScalingFactor);

    public AutoencoderKL(AutoencoderKLConfig c)
    {
        Config = c;
        Encoder = Child("encoder", new VaeEncoder(c));
        Decoder = Child("decoder", new VaeDecoder(c));
        QuantConv = Child("quant_conv", new Conv2d(2 * c.LatentChannels, 2 * c.LatentChannels, 1));
        PostQuantConv = Child("post_quant_conv", new Conv2d(c.LatentChannels, c.LatentChannels, 1));
    }

    /// <summary>image: [B, 3, H, W] in [-1, 1] -> (mean, logvar), each [B, L, H/f, W/f]; logvar clamped to [-30, 20].</summary>
    public (Tensor Mean, Tensor LogVar) Encode(Tensor image)
    {
        // image: [B, C, H, W]
        var moments = QuantConv.Forward(Encoder.Forward(image));
        Hook?.Invoke("quant_conv", moments);
        int l = Config.LatentChannels;
        var mean = Ops.Narrow(moments, 1, 0, l);
        var logvar = Ops.Clamp(Ops.Narrow(moments, 1, l, l), -30f, 20f);
        return (mean, logvar);
    }

    /// <summary>latents: [B, L, h, w] (already divided by scaling_factor) -> image [B, 3, h*f, w*f], about [-1, 1].</summary>
    public Tensor Decode(Tensor latents)
    {
        // latents: [B, L, h, w]
        var z = PostQuantConv.Forward(latents);
        Hook?.Invoke("post_quant_conv", z);
        return Decoder.Forward(z);
    }

    /// <summary>Maps old diffusers VAE attention names (query/key/value/proj_attn) to the current ones.</summary>
    public static string RenameLegacyKey(string key)
    {
        foreach (var (old, now) in LegacyNames)
        {
            int i = key.IndexOf(old, StringComparison.Ordinal);
            if (i >= 0 && key.Contains(".attentions.", StringComparison.Ordinal)) return key[..i] + now + key[(i + old.Length)..];
        }
        return key;
    }

    private static readonly (string, string)[] LegacyNames = { (".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.") };
}

public sealed class VaeEncoder : Module
{
    public readonly Conv2d ConvIn, ConvOut;
    public readonly VaeLevelBlock[] DownBlocks;
    public readonly VaeMidBlock MidBlock;
    public readonly GroupNorm ConvNormOut;
    public Action<string, Tensor>? Hook { get; set; }

    public VaeEncoder(AutoencoderKLConfig c)
    {
        var ch = c.BlockOutChannels;
        ConvIn = Child("conv_in", new Conv2d(c.InChannels, ch[0], 3, padding: 1));
        var list = Child("down_blocks", new ModuleList());
        DownBlocks = new VaeLevelBlock[ch.Length];
        int outCh = ch[0];
        for (int i = 0; i < ch.Length; i++)
        {
            int inCh = outCh;
            outCh = ch[i];
            DownBlocks[i] = list.Add(VaeLevelBlock.Down(c, inCh, outCh, addDownsample: i != ch.Length - 1));
        }
        MidBlock = Child("mid_block", new VaeMidBlock(ch[^1], c.NormNumGroups));
        ConvNormOut = Child("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[^1], AutoencoderKL.Eps));
        ConvOut = Child("conv_out", new Conv2d(ch[^1], 2 * c.LatentChannels, 3, padding: 1));
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, 3, H, W] -> [B, 2L, H/f, W/f]
        bool free = Hook == null && !GradMode.IsEnabled;
        var h = ConvIn.Forward(x);
        Hook?.Invoke("encoder.conv_in", h);
        for (int i = 0; i < DownBlocks.Length; i++)
        {
            h = VaeLevelBlock.Advance(h, DownBlocks[i].Forward(h), x, free);
            Hook?.Invoke($"encoder.down_blocks.{i}", h);
            Cooperative.ThrowIfCancellationRequested();
        }
        h = VaeLevelBlock.Advance(h, MidBlock.Forward(h), x, free);
        Hook?.Invoke("encoder.mid_block", h);
        h = VaeLevelBlock.Advance(h, ConvNormOut.Forward(h), x, free);
        Hook?.Invoke("encoder.conv_norm_out", h);
        var o = ConvOut.Forward(Ops.Silu(h));
        Hook?.Invoke("encoder.conv_out", o);
        return o;
    }
}

public sealed class VaeDecoder : Module
{
    public readonly Conv2d ConvIn, ConvOut;
    public readonly VaeLevelBlock[] UpBlocks;
    public readonly VaeMidBlock MidBlock;
    public readonly GroupNorm ConvNormOut;
    public Action<string, Tensor>? Hook { get; set; }

    public VaeDecoder(AutoencoderKLConfig c)
    {
        var ch = c.BlockOutChannels;
        var rev = ch.Reverse().ToArray();
        ConvIn = Child("conv_in", new Conv2d(c.LatentChannels, ch[^1], 3, padding: 1));
        MidBlock = Child("mid_block", new VaeMidBlock(ch[^1], c.NormNumGroups));
        var list = Child("up_blocks", new ModuleList());
        UpBlocks = new VaeLevelBlock[ch.Length];
        int outCh = rev[0];
        for (int i = 0; i < ch.Length; i++)
        {
            int prevOut = outCh;
            outCh = rev[i];
            UpBlocks[i] = list.Add(VaeLevelBlock.Up(c, prevOut, outCh, addUpsample: i != ch.Length - 1));
        }
        ConvNormOut = Child("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[0], AutoencoderKL.Eps));
        ConvOut = Child("conv_out", new Conv2d(ch[0], c.OutChannels, 3, padding: 1));
    }

    public Tensor Forward(Tensor z)
    {
        // z: [B, L, h, w] -> [B, 3, h*f, w*f]
        bool free = Hook == null && !GradMode.IsEnabled;
        var h = ConvIn.Forward(z);
        Hook?.Invoke("decoder.conv_in", h);
        h = VaeLevelBlock.Advance(h, MidBlock.Forward(h), z, free);
        Hook?.Invoke("decoder.mid_block", h);
        Cooperative.ThrowIfCancellationRequested();
        for (int i = 0; i < UpBlocks.Length; i++)
        {
            h = VaeLevelBlock.Advance(h, UpBlocks[i].Forward(h), z, free);
            Hook?.Invoke($"decoder.up_blocks.{i}", h);
            Cooperative.ThrowIfCancellationRequested();
        }
        if (Hook == null && !GradMode.IsEnabled) return ConvOut.Forward(Ops.GroupNormSilu(h, ConvNormOut.Groups, ConvNormOut.Weight.Value, ConvNormOut.Bias.Value, ConvNormOut.Eps));
        h = ConvNormOut.Forward(h);
        Hook?.Invoke("decoder.conv_norm_out", h);
        return ConvOut.Forward(Ops.Silu(h));
    }
}

/// <summary>DownEncoderBlock2D / UpDecoderBlock2D: resnets without time embedding, then a down- or upsampler.</summary>
public sealed class VaeLevelBlock : Module
{
    public ResnetBlock2D[] Resnets { get; private set; } = Array.Empty<ResnetBlock2D>();
    public Downsample2D? Downsampler { get; private set; }
    public Upsample2D? Upsampler { get; private set; }

    private VaeLevelBlock() { }

    private static ResnetBlock2D[] MakeResnets(VaeLevelBlock b, int count, int inCh, int outCh, int groups)
    {
        var list = b.Child("resnets", new ModuleList());
        return Enumerable.Range(0, count).Select(j => list.Add(new ResnetBlock2D(j == 0 ? inCh : outCh, outCh, null, groups, AutoencoderKL.Eps))).ToArray();
    }

    public static VaeLevelBlock Down(AutoencoderKLConfig c, int inCh, int outCh, bool addDownsample)
    {
        var b = new VaeLevelBlock();
        b.Resnets = MakeResnets(b, c.LayersPerBlock, inCh, outCh, c.NormNumGroups);
        if (addDownsample) b.Downsampler = b.Child("downsamplers", new ModuleList()).Add(new Downsample2D(outCh, padding: 0));
        return b;
    }

    public static VaeLevelBlock Up(AutoencoderKLConfig c, int inCh, int outCh, bool addUpsample)
    {
        var b = new VaeLevelBlock();
        b.Resnets = MakeResnets(b, c.LayersPerBlock + 1, inCh, outCh, c.NormNumGroups);
        if (addUpsample) b.Upsampler = b.Child("upsamplers", new ModuleList()).Add(new Upsample2D(outCh));
        return b;
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, C, H, W]
        bool free = !GradMode.IsEnabled;
        var input = x;
        foreach (var r in Resnets)
        {
            x = Advance(x, r.Forward(x, null), input, free);
            Cooperative.ThrowIfCancellationRequested(); // a full-size decoder block takes seconds: check per resnet
        }
        if (Downsampler != null) x = Advance(x, Downsampler.Forward(x), input, free);
        if (Upsampler != null) x = Advance(x, Upsampler.Forward(x), input, free);
        return x;
    }

    /// <summary>
    /// At inference a stage's output replaces the previous one, which is freed at once (unless it is the caller's
    /// input): at 512x512 these maps are 134-268 MB each, and kept to the end of the pass they added ~1 GB to the
    /// peak. While gradients are recorded (or a hook holds the maps) nothing is freed.
    /// </summary>
    internal static Tensor Advance(Tensor previous, Tensor next, Tensor input, bool free)
    {
        if (free && !ReferenceEquals(previous, input) && !ReferenceEquals(previous, next)) previous.Dispose();
        return next;
    }
}

/// <summary>UNetMidBlock2D as the VAE uses it: resnet -> single-head spatial self-attention -> resnet.</summary>
public sealed class VaeMidBlock : Module
{
    public readonly ResnetBlock2D[] Resnets;
    public readonly VaeAttention[] Attentions;

    public VaeMidBlock(int channels, int groups)
    {
        var res = Child("resnets", new ModuleList());
        var att = Child("attentions", new ModuleList());
        Resnets = new[]
        {
            res.Add(new ResnetBlock2D(channels, channels, null, groups, AutoencoderKL.Eps)),
            res.Add(new ResnetBlock2D(channels, channels, null, groups, AutoencoderKL.Eps)),
        };
        Attentions = new[] { att.Add(new VaeAttention(channels, groups)) };
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, C, H, W]
        x = Resnets[0].Forward(x, null);
        x = Attentions[0].Forward(x);
        return Resnets[1].Forward(x, null);
    }
}

/// <summary>group_norm -> q/k/v (with bias) over the H*W sequence, one head of width C -> to_out.0 -> residual.</summary>
public sealed class VaeAttention : Module
{
    public readonly GroupNorm GroupNorm;
    public readonly Attention Attn;

    public VaeAttention(int channels, int groups)
    {
        GroupNorm = Child("group_norm", new GroupNorm(groups, channels, AutoencoderKL.Eps));
        // Same parameter names as diffusers' Attention (to_q, to_k, to_v, to_out.0) at this level.
        Attn = new Attention(channels, null, heads: 1, headDim: channels, qkvBias: true);
        foreach (var (n, m) in new (string, Module)[] { ("to_q", Attn.ToQ), ("to_k", Attn.ToK), ("to_v", Attn.ToV), ("to_out", Attn.ToOut) }) Child(n, m);
    }

    public Tensor Forward(Tensor x)
    {
        // x: [B, C, H, W]
        int b = x.Dim(0), h = x.Dim(2), w = x.Dim(3);
        using var scope = TensorScope.ForInference();
        var seq = Transformer2DModel.ToSequence(GroupNorm.Forward(x));
        var o = Attn.Forward(seq);
        return scope.KeepOrSelf(Ops.Add(Transformer2DModel.ToImage(o, b, h, w), x));
    }
}
