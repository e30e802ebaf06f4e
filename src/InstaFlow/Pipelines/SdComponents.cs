// Loads the Stable-Diffusion-1.5-family components (tokenizer, text encoder, UNet, VAE) from a diffusers folder
// (see DiffusersFolder), checks they fit together, and owns their weights (hash, release, dispose).
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Pipelines;

/// <summary>The four SD-1.5-family components a text-to-image pipeline needs, and what was added on top of them.</summary>
public sealed partial class SdComponents : ITextToImageModel, IDisposable
{
    public required string Name { get; init; }
    public required ClipTokenizer Tokenizer { get; init; }
    public required ClipTextModel TextEncoder { get; init; }
    public required UNet2DConditionModel Unet { get; init; }
    public required AutoencoderKL Vae { get; init; }
    public IReadOnlyList<LoadReport> Reports { get; init; } = Array.Empty<LoadReport>();

    /// <summary>The loads' warnings (e.g. an all-NaN tensor), for the front end to show.</summary>
    public IEnumerable<string> Warnings => Reports.SelectMany(r => r.Warnings);

    /// <summary>Scans every weight of the three networks and refuses any NaN/Inf (generate --check-weights).</summary>
    public void RequireFiniteWeights()
    {
        WeightCheck.RequireFinite(TextEncoder, $"{Name}/text_encoder");
        WeightCheck.RequireFinite(Unet, $"{Name}/unet");
        WeightCheck.RequireFinite(Vae, $"{Name}/vae");
    }

    /// <summary>What was put on top of the folder's weights (a TAESD decoder, LoRAs), in the order applied.</summary>
    public List<string> Additions { get; } = new();

    /// <summary>The name with its additions, e.g. "sd15 (taesd, lora kohya.safetensors x0.7)": what PNG metadata records.</summary>
    public string Description => Additions.Count == 0 ? Name : $"{Name} ({string.Join(", ", Additions)})";

    /// <summary>The decoder pipelines use: the VAE's, unless DecodeWith put TAESD in its place.</summary>
    public ILatentDecoder Decoder => _decoder ?? Vae;
    private ILatentDecoder? _decoder;

    /// <summary>The tokenizer and the CLIP text model as one prompt encoder.</summary>
    public ITextEncoder PromptEncoder => _prompts ??= new ClipPromptEncoder(Tokenizer, TextEncoder);
    private ClipPromptEncoder? _prompts;

    public IDenoiser Denoiser => Unet;
    public ILatentEncoder LatentEncoder => Vae;

    /// <summary>Steps and guidance for this model (see <see cref="ModelDefaults.For"/>).</summary>
    public ModelDefaults Defaults { get; init; } = ModelDefaults.OneStep;

    public ControlNetModel? ControlNet { get; private set; }

    /// <summary>Runs requests that carry a control image through this ControlNet (InstaFlow's pipeline_rf_ctrl.py).</summary>
    public void AttachControlNet(ControlNetModel controlNet, string name)
    {
        if (controlNet.Config.Unet.CrossAttentionDim != Unet.Config.CrossAttentionDim || controlNet.Config.Unet.InChannels != Unet.Config.InChannels)
            throw new InvalidInputException($"{Name}: the ControlNet {name} reads {controlNet.Config.Unet.InChannels}-channel latents with {controlNet.Config.Unet.CrossAttentionDim}-wide text, " +
                $"but this UNet has {Unet.Config.InChannels} and {Unet.Config.CrossAttentionDim}; use a ControlNet made for this model family");
        ControlNet = controlNet;
        Additions.Add($"controlnet {name}");
    }

    /// <summary>
    /// Decodes with another decoder (TAESD: about 10x cheaper, slightly softer images). It must read the same latents:
    /// the same channel count and the same image pixels per latent pixel as the VAE.
    /// </summary>
    public void DecodeWith(ILatentDecoder decoder)
    {
        if (decoder.LatentChannels != Vae.Config.LatentChannels || decoder.ScaleFactor != Vae.Config.ScaleFactor)
            throw new InvalidInputException($"{Name}: the replacement decoder reads {decoder.LatentChannels}-channel latents at 1/{decoder.ScaleFactor} size, " +
                $"but this model's VAE makes {Vae.Config.LatentChannels}-channel latents at 1/{Vae.Config.ScaleFactor}; use a TAESD trained for this VAE");
        _decoder = decoder;
    }

    /// <summary>
    /// Loads every component; variant picks e.g. diffusion_pytorch_model.fp16.safetensors (falling back to the plain
    /// file for components without it). precision: see <see cref="WeightPrecision"/> (Float32 to train the networks).
    /// </summary>
    public static SdComponents Load(string dir, string? variant = null, WeightPrecision precision = WeightPrecision.Stored)
    {
        var f = DiffusersFolder.Open(dir);
        // Components without the variant fall back to their plain file, as diffusers does, but a variant that no
        // component has is a typo (e.g. --variant fp61) and must not silently load the full-precision weights.
        if (variant != null && !new[] { ("text_encoder", "model"), ("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model") }
                .Any(c => File.Exists(Path.Combine(f.Component(c.Item1), $"{c.Item2}.{variant}.safetensors"))))
            throw new InvalidInputException($"{dir}: no component has weights for variant \"{variant}\" (e.g. unet/diffusion_pytorch_model.{variant}.safetensors); drop --variant or name one the folder has");
        var reports = new List<LoadReport>();
        string Pick(string comp, string stem)
        {
            if (variant == null) return f.Weights(comp, stem, null);
            try { return f.Weights(comp, stem, variant); }
            catch (FileNotFoundException) when (File.Exists(Path.Combine(f.Component(comp), stem + ".safetensors"))) { return f.Weights(comp, stem, null); }
        }

        var tokenizer = ClipTokenizer.FromDirectory(f.Component("tokenizer"));

        var text = new ClipTextModel(ClipTextConfig.Load(Path.Combine(f.Component("text_encoder"), "config.json")));
        reports.Add(StateDictLoader.Load(text, Pick("text_encoder", "model"), ignoredKeys: ClipTextModel.IgnoredKeys, precision: precision));

        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(f.Component("unet"), "config.json")));
        reports.Add(StateDictLoader.Load(unet, Pick("unet", "diffusion_pytorch_model"), precision: precision));

        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(f.Component("vae"), "config.json")));
        reports.Add(StateDictLoader.Load(vae, Pick("vae", "diffusion_pytorch_model"), AutoencoderKL.RenameLegacyKey, precision: precision));

        if (text.Config.HiddenSize != unet.Config.CrossAttentionDim)
            throw new InvalidInputException($"{f.Root}: text_encoder hidden_size {text.Config.HiddenSize} does not match unet cross_attention_dim {unet.Config.CrossAttentionDim}");
        if (vae.Config.LatentChannels != unet.Config.InChannels)
            throw new InvalidInputException($"{f.Root}: vae latent_channels {vae.Config.LatentChannels} does not match unet in_channels {unet.Config.InChannels}");
        return new SdComponents
        {
            Name = Path.GetFileName(f.Root.TrimEnd(Path.DirectorySeparatorChar)), Tokenizer = tokenizer, TextEncoder = text, Unet = unet, Vae = vae,
            Reports = reports, Defaults = ModelDefaults.For(f),
        };
    }

    /// <summary>
    /// SHA-256 over every parameter of the three networks (component, name, shape, float32 values in order): the
    /// identity of the weights themselves, whatever the folder is called, where it lives or which dtype its files use.
    /// </summary>
    public unsafe string WeightsSha256()
    {
        using var h = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (component, m) in new (string, Module)[] { ("text_encoder", TextEncoder), ("unet", Unet), ("vae", Vae) })
            foreach (var (name, p) in m.NamedParameters())
            {
                var t = p.Value;
                h.AppendData(System.Text.Encoding.UTF8.GetBytes($"{component}/{name}[{string.Join(",", t.ShapeArray())}]"));
                var chunk = t.DType == TensorDType.F32 ? null : new float[Math.Min(t.Numel, 1 << 20)];
                for (long off = 0; off < t.Numel; off += 1 << 20)
                {
                    int n = (int)Math.Min(1 << 20, t.Numel - off);
                    if (chunk == null) { h.AppendData(new ReadOnlySpan<byte>(t.Data + off, n * sizeof(float))); continue; }
                    fixed (float* c = chunk) t.Stored.Widen(off, c, n);
                    h.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(chunk.AsSpan(0, n)));
                }
            }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>
    /// Keeps the text encoder's, UNet's, decoder's and ControlNet's Linear/Conv2d weights packed after their first use
    /// in calls of at most maxRows rows (<see cref="WeightPacking.Enable"/>): faster repeated generation (a server,
    /// several images) for about 4 bytes per packed weight on top of the weights themselves; pointless for one image.
    /// Additions applied later drop the packs of what they change. Returns the number of weights marked.
    /// </summary>
    public int PackWeightsOnce(int maxRows = WeightPacking.DefaultMaxRows) =>
        Networks().Sum(m => WeightPacking.Enable(m, maxRows));

    /// <summary>Frees every pack of these components' weights (they are packed again from their current values on next use).</summary>
    public void DropWeightPacks()
    {
        foreach (var m in Networks()) WeightPacking.Drop(m);
    }

    /// <summary>Bytes held by the packs of these components' weights now.</summary>
    public long PackedWeightBytes => Networks().Sum(WeightPacking.PackedBytes);

    private IEnumerable<Module> Networks() =>
        new Module?[] { TextEncoder, Unet, Vae, _decoder as Module, ControlNet }.Where(m => m != null).Distinct().Select(m => m!);

    /// <summary>True once the text encoder's or the UNet's weights were released: these components cannot generate again.</summary>
    public bool DenoisersReleased { get; private set; }

    /// <summary>
    /// Frees the weights of a network a one-shot generation is done with (memory-mapped ones are unmapped): the text
    /// encoder after the prompts, the UNet after the last step, so the next stage's activations need no room beside them.
    /// </summary>
    public void ReleaseTextEncoder() => Release(TextEncoder);
    public void ReleaseDenoiser() => Release(Unet);

    public void Release(Module network)
    {
        if (!ReferenceEquals(network, TextEncoder) && !ReferenceEquals(network, Unet))
            throw new ArgumentException("only the text encoder and the UNet can be released; the decoder runs last");
        network.FreeWeights();
        BufferPool.Trim();
        DenoisersReleased = true;
    }

    public void Dispose()
    {
        foreach (var m in new Module?[] { TextEncoder, Unet, Vae, _decoder as Module, ControlNet })
            foreach (var p in m?.Parameters() ?? []) p.Value.Dispose();
    }
}
