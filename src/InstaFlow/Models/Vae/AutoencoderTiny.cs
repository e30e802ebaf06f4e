// diffusers AutoencoderTiny (TAESD): a small conv-only encoder/decoder for the SD latent space, an order of magnitude
// cheaper than AutoencoderKL's decoder. Layers are flat `encoder.layers.{i}` / `decoder.layers.{i}` lists as in
// diffusers; latents are the SD *scaled* latents (scaling_factor 1.0).
using System.Globalization;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Vae;

public sealed record AutoencoderTinyConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LatentChannels { get; init; } = 4;
    public int[] EncoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    public int[] DecoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    public int[] NumEncoderBlocks { get; init; } = [1, 3, 3, 3];
    public int[] NumDecoderBlocks { get; init; } = [3, 3, 3, 1];
    public int UpsamplingScalingFactor { get; init; } = 2;
    public float LatentMagnitude { get; init; } = 3f;
    public float LatentShift { get; init; } = 0.5f;
    public float ScalingFactor { get; init; } = 1f;

    /// <summary>Image pixels per latent pixel: one stride-2 conv (encoder) or upsample (decoder) between levels.</summary>
    public int ScaleFactor => (int)Math.Pow(UpsamplingScalingFactor, NumDecoderBlocks.Length - 1);

    public static AutoencoderTinyConfig Load(string path) => From(ConfigFile.Load(path));

    public static AutoencoderTinyConfig From(ConfigFile c)
    {
        var d = new AutoencoderTinyConfig();
        var cfg = new AutoencoderTinyConfig
        {
            InChannels = c.Int("in_channels", 3),
            OutChannels = c.Int("out_channels", 3),
            LatentChannels = c.Int("latent_channels", 4),
            EncoderBlockOutChannels = c.Ints("encoder_block_out_channels", d.EncoderBlockOutChannels),
            DecoderBlockOutChannels = c.Ints("decoder_block_out_channels", d.DecoderBlockOutChannels),
            NumEncoderBlocks = c.Ints("num_encoder_blocks", d.NumEncoderBlocks),
            NumDecoderBlocks = c.Ints("num_decoder_blocks", d.NumDecoderBlocks),
            UpsamplingScalingFactor = c.Int("upsampling_scaling_factor", 2),
            LatentMagnitude = c.Float("latent_magnitude", 3f),
            LatentShift = c.Float("latent_shift", 0.5f),
            ScalingFactor = c.Float("scaling_factor", 1f),
        };
        c.Require("act_fn", c.String("act_fn", "relu") == "relu", $"\"{c.String("act_fn", "relu")}\"", "relu");
        if (cfg.EncoderBlockOutChannels.Length != cfg.NumEncoderBlocks.Length)
            throw new InvalidInputException($"{c.Path}: encoder_block_out_channels and num_encoder_blocks have different lengths");
        if (cfg.DecoderBlockOutChannels.Length != cfg.NumDecoderBlocks.Length)
            throw new InvalidInputException($"{c.Path}: decoder_block_out_channels and num_decoder_blocks have different lengths");
        return cfg;
    }
}

/// <summary>relu(conv3(relu(conv2(relu(conv1(x))))) + skip(x)); skip is a 1x1 conv only when the width changes.</summary>
public sealed class AutoencoderTinyBlock : Module
{
    private readonly Conv2d _c0, _c2, _c4;
    private readonly Conv2d? _skip;

    public AutoencoderTinyBlock(int inChannels, int outChannels)
    {
        var conv = Child("conv", new ModuleList());
        // indices 1 and 3 are the ReLUs, which have no weights
        _c0 = conv.Add(new Conv2d(inChannels, outChannels, 3, padding: 1));
        conv.Add(new ModuleList());
        _c2 = conv.Add(new Conv2d(outChannels, outChannels, 3, padding: 1));
        conv.Add(new ModuleList());
        _c4 = conv.Add(new Conv2d(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels) _skip = Child("skip", new Conv2d(inChannels, outChannels, 1, bias: false));
    }

    // x: [B, C, H, W]
    public Tensor Forward(Tensor x)
    {
        var h = _c4.Forward(Ops.Relu(_c2.Forward(Ops.Relu(_c0.Forward(x)))));
        return Ops.Relu(Ops.Add(h, _skip?.Forward(x) ?? x));
    }
}

/// <summary>A flat layer list as diffusers builds it: convs, tiny blocks, and (weightless) ReLUs and upsamples.</summary>
public sealed class TinyLayers : Module
{
    private readonly List<Func<Tensor, Tensor>> _steps = new();
    private int _count;

    public Action<string, Tensor>? Hook { get; set; }
    public string HookPrefix { get; init; } = "";

    public void Add(Module m, Func<Tensor, Tensor> forward) { Child((_count++).ToString(CultureInfo.InvariantCulture), m); _steps.Add(forward); }
    public void AddWeightless(Func<Tensor, Tensor> forward) { _count++; _steps.Add(forward); }

    // x: [B, C, H, W]
    public Tensor Forward(Tensor x)
    {
        for (int i = 0; i < _steps.Count; i++)
        {
            x = _steps[i](x);
            Hook?.Invoke($"{HookPrefix}{i}", x);
        }
        return x;
    }
}

public sealed class AutoencoderTiny : Module, ILatentDecoder, ILatentEncoder
{
    public AutoencoderTinyConfig Config { get; }
    int ILatentDecoder.LatentChannels => Config.LatentChannels;
    int ILatentDecoder.ScaleFactor => Config.ScaleFactor;
    float ILatentDecoder.ScalingFactor => Config.ScalingFactor;
    int ILatentEncoder.LatentChannels => Config.LatentChannels;
    int ILatentEncoder.ScaleFactor => Config.ScaleFactor;
    /// <summary>TAESD's latents are already in SD's scaled latent space.</summary>
    Tensor ILatentEncoder.EncodeLatents(Tensor image) => Encode(image);
    public readonly TinyLayers Encoder, Decoder;

    public Action<string, Tensor>? Hook { set { Encoder.Hook = value; Decoder.Hook = value; } }

    public AutoencoderTiny(AutoencoderTinyConfig c)
    {
        Config = c;
        Encoder = Child("encoder", new Holder()).Add("layers", new TinyLayers { HookPrefix = "encoder.layers." });
        for (int i = 0; i < c.NumEncoderBlocks.Length; i++)
        {
            int ch = c.EncoderBlockOutChannels[i];
            // the first level keeps the size; every later one halves it with a bias-free stride-2 conv
            var conv = i == 0 ? new Conv2d(c.InChannels, ch, 3, padding: 1) : new Conv2d(c.EncoderBlockOutChannels[i - 1], ch, 3, stride: 2, padding: 1, bias: false);
            Encoder.Add(conv, conv.Forward);
            for (int b = 0; b < c.NumEncoderBlocks[i]; b++) { var blk = new AutoencoderTinyBlock(ch, ch); Encoder.Add(blk, blk.Forward); }
        }
        var encOut = new Conv2d(c.EncoderBlockOutChannels[^1], c.LatentChannels, 3, padding: 1);
        Encoder.Add(encOut, encOut.Forward);

        Decoder = Child("decoder", new Holder()).Add("layers", new TinyLayers { HookPrefix = "decoder.layers." });
        var decIn = new Conv2d(c.LatentChannels, c.DecoderBlockOutChannels[0], 3, padding: 1);
        Decoder.Add(decIn, decIn.Forward);
        Decoder.AddWeightless(Ops.Relu);
        for (int i = 0; i < c.NumDecoderBlocks.Length; i++)
        {
            bool last = i == c.NumDecoderBlocks.Length - 1;
            int ch = c.DecoderBlockOutChannels[i];
            for (int b = 0; b < c.NumDecoderBlocks[i]; b++) { var blk = new AutoencoderTinyBlock(ch, ch); Decoder.Add(blk, blk.Forward); }
            int f = c.UpsamplingScalingFactor;
            if (!last) Decoder.AddWeightless(x => Ops.UpsampleNearest(x, x.Dim(2) * f, x.Dim(3) * f));
            // after each upsample a bias-free conv; the final conv maps to RGB and has a bias
            var conv = new Conv2d(ch, last ? c.OutChannels : ch, 3, padding: 1, bias: last);
            Decoder.Add(conv, conv.Forward);
        }
    }

    /// <summary>image: [B, 3, H, W] in [-1, 1] -> latents [B, L, H/f, W/f] (SD's scaled latent space).</summary>
    public Tensor Encode(Tensor image)
    {
        // image: [B, C, H, W]
        return Encoder.Forward(Ops.MulScalar(Ops.AddScalar(image, 1f), 0.5f));
    }

    /// <summary>latents: [B, L, h, w] -> image [B, 3, h*f, w*f], about [-1, 1], not clamped.</summary>
    public Tensor Decode(Tensor latents)
    {
        // latents: [B, L, h, w]; soft clamp to (-3, 3) first
        var z = Ops.MulScalar(Ops.Tanh(Ops.MulScalar(latents, 1f / 3f)), 3f);
        Decoder.Hook?.Invoke("decoder_input_clamped", z);
        return Ops.AddScalar(Ops.MulScalar(Decoder.Forward(z), 2f), -1f);
    }

    /// <summary>Latents to [0, 1] for 8-bit storage: clamp(z / (2 * latent_magnitude) + latent_shift, 0, 1).</summary>
    public Tensor ScaleLatents(Tensor z) => Ops.Clamp(Ops.AddScalar(Ops.MulScalar(z, 1f / (2f * Config.LatentMagnitude)), Config.LatentShift), 0f, 1f);

    /// <summary>The inverse of ScaleLatents: (u - latent_shift) * 2 * latent_magnitude.</summary>
    public Tensor UnscaleLatents(Tensor u) => Ops.MulScalar(Ops.AddScalar(u, -Config.LatentShift), 2f * Config.LatentMagnitude);

    /// <summary>Reads config.json and diffusion_pytorch_model.safetensors from a diffusers AutoencoderTiny folder.</summary>
    public static (AutoencoderTiny Model, LoadReport Report) Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: TAESD folder not found (a diffusers AutoencoderTiny folder: config.json + diffusion_pytorch_model.safetensors)");
        var m = new AutoencoderTiny(AutoencoderTinyConfig.Load(Path.Combine(dir, "config.json")));
        var weights = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
        if (!File.Exists(weights)) throw new FileNotFoundException($"{weights}: TAESD weights not found", weights);
        var report = StateDictLoader.Load(m, weights, precision: WeightPrecision.Stored);
        m.SetRequiresGrad(false);
        return (m, report);
    }

    /// <summary>`encoder` / `decoder` hold only `layers`, as in diffusers.</summary>
    private sealed class Holder : Module
    {
        public T Add<T>(string name, T module) where T : Module => Child(name, module);
    }
}
