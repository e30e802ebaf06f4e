// SdComponents from any ModelSource: diffusers folders as before, SD-1.x single-file checkpoints (LDM key names, in
// safetensors or a torch pickle) with built-in SD-1.5 configs and tokenizer or a --config folder's, and --unet files.
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Ldm;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;

namespace InstaFlow.Pipelines;

public sealed partial class SdComponents
{
    /// <summary>Loads a diffusers folder or a single-file checkpoint, then swaps in source.UnetFile's UNet weights if given.</summary>
    public static SdComponents Open(ModelSource source)
    {
        var path = System.IO.Path.GetFullPath(source.Path);
        SdComponents model;
        if (Directory.Exists(path))
        {
            if (source.ConfigDir != null)
                throw new InvalidInputException($"--config is for single-file checkpoints; {path} is a diffusers folder with its own configs (drop --config)");
            if (source.Ema)
                throw new InvalidInputException($"--ema selects the EMA weights of a single-file checkpoint; the folder {path} has none (drop --ema)");
            model = Load(path, source.Variant, source.Precision);
        }
        else if (File.Exists(path))
        {
            if (source.Variant != null)
                throw new InvalidInputException($"--variant picks a weights file inside a diffusers folder; {path} is a single file (drop --variant)");
            model = LoadSingleFile(path, source.ConfigDir, source.Ema, source.Precision);
        }
        else throw new FileNotFoundException($"model folder not found: {path} (nor a checkpoint file of that name; --model takes a diffusers folder or a single-file checkpoint)", path);

        if (source.UnetFile != null)
        {
            try { model.ReplaceUnetWeights(source.UnetFile, source.Precision); }
            catch { model.Dispose(); throw; }
        }
        return model;
    }

    /// <summary>The components a single-file checkpoint holds, as model_index.json would list them (library, class).</summary>
    public static readonly IReadOnlyDictionary<string, (string Library, string Class)> SingleFileComponents = new Dictionary<string, (string, string)>
    {
        ["text_encoder"] = ("transformers", "CLIPTextModel"), ["tokenizer"] = ("transformers", "CLIPTokenizer"),
        ["unet"] = ("diffusers", "UNet2DConditionModel"), ["vae"] = ("diffusers", "AutoencoderKL"),
    };

    /// <summary>Replaces every UNet weight with a diffusers-named state dict (all keys must match this UNet).</summary>
    public void ReplaceUnetWeights(string file, WeightPrecision precision = WeightPrecision.Stored)
    {
        using var weights = WeightsFile.Open(file);
        StateDictLoader.Load(Unet, weights, precision: precision);
        Additions.Add($"unet {System.IO.Path.GetFileName(file)}");
    }

    private static SdComponents LoadSingleFile(string path, string? configDir, bool ema, WeightPrecision precision)
    {
        using var file = WeightsFile.Open(path);
        LdmKeys.CheckSd1(file);
        ClipTextConfig textConfig = new();
        UNet2DConditionConfig unetConfig = new();
        AutoencoderKLConfig vaeConfig = new();
        ModelDefaults defaults = ModelDefaults.OneStep;
        ClipTokenizer tokenizer;
        if (configDir != null)
        {
            var f = DiffusersFolder.Open(configDir);
            textConfig = ClipTextConfig.Load(System.IO.Path.Combine(f.Component("text_encoder"), "config.json"));
            unetConfig = UNet2DConditionConfig.Load(System.IO.Path.Combine(f.Component("unet"), "config.json"));
            vaeConfig = AutoencoderKLConfig.Load(System.IO.Path.Combine(f.Component("vae"), "config.json"));
            tokenizer = ClipTokenizer.FromDirectory(f.Component("tokenizer"));
            defaults = ModelDefaults.For(f);
        }
        else tokenizer = ClipTokenizer.Standard();

        var text = new ClipTextModel(textConfig);
        var unet = new UNet2DConditionModel(unetConfig);
        var vae = new AutoencoderKL(vaeConfig);
        var reports = new List<LoadReport>();
        try
        {
            reports.Add(StateDictLoader.Load(text, LdmKeys.TextEncoder(file), ignoredKeys: ClipTextModel.IgnoredKeys, precision: precision));
            reports.Add(StateDictLoader.Load(unet, LdmKeys.Unet(file, unetConfig, ema), precision: precision));
            reports.Add(StateDictLoader.Load(vae, LdmKeys.Vae(file, vaeConfig), precision: precision));
            if (text.Config.HiddenSize != unet.Config.CrossAttentionDim || vae.Config.LatentChannels != unet.Config.InChannels)
                throw new InvalidInputException($"{path}: the text encoder width {text.Config.HiddenSize}, UNet cross-attention width {unet.Config.CrossAttentionDim}, " +
                    $"VAE latent channels {vae.Config.LatentChannels} and UNet input channels {unet.Config.InChannels} do not fit together");
        }
        catch (InvalidInputException e) when (configDir == null)
        {
            DisposeAll(text, unet, vae);
            // The built-in configs are SD-1.5's; a smaller or altered model needs its own.
            throw new InvalidInputException($"{e.Message}; read with SD-1.5's built-in configs: a single file that is not standard SD-1.5 needs --config DIR (a diffusers folder with its configs and tokenizer)");
        }
        catch
        {
            DisposeAll(text, unet, vae);
            throw;
        }
        return new SdComponents
        {
            Name = System.IO.Path.GetFileName(path), Tokenizer = tokenizer, TextEncoder = text, Unet = unet, Vae = vae,
            Reports = reports, Defaults = defaults,
        };
    }

    private static void DisposeAll(params Module[] modules)
    {
        foreach (var m in modules)
            foreach (var p in m.Parameters()) p.Value.Dispose();
    }
}
