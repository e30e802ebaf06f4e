// The options every model-taking command shares: --model (a diffusers folder or a checkpoint file), --config, --ema
// and --unet, and the fine-tune merge options of generate, serve and convert; they build the library's ModelSource
// and ModelAdditions so every command reads a model the same way.
using System.CommandLine;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

internal sealed class ModelOptions
{
    public readonly Option<string?> Model;
    public readonly Option<string?> Config = new("--config") { Description = "diffusers folder whose unet/vae/text_encoder configs and tokenizer describe a single-file --model (default: SD-1.5's, built in)" };
    public readonly Option<bool> Ema = new("--ema") { Description = "use the checkpoint's EMA UNet weights (model_ema.*)" };
    public readonly Option<string?> Unet = new("--unet") { Description = "replace the UNet weights with this diffusers-named state dict (.pt, .bin, .safetensors), e.g. instaflow_0_9B.pt" };
    private readonly bool _required, _ema;

    /// <summary>
    /// required: the command has no default model (--model must be given); ema: offer --ema (reflow does not: its own
    /// --ema is the decay of the student's EMA).
    /// </summary>
    public ModelOptions(string name = "--model", bool required = false, string? what = null, bool ema = true)
    {
        _required = required;
        _ema = ema;
        Model = new Option<string?>(name)
        {
            Description = (what ?? "the model") + ": a diffusers folder, or an SD-1.x single-file checkpoint (.safetensors, .ckpt, .pt)" + (required ? "" : "; default: the embedded model"),
            Required = required,
        };
    }

    public void AddTo(Command cmd)
    {
        foreach (var o in _ema ? new Option[] { Model, Config, Ema, Unet } : [Model, Config, Unet]) cmd.Options.Add(o);
    }

    public ModelSource Source(ParseResult r, string? variant = null) =>
        new(_required ? r.GetValue(Model)! : ModelLocator.Resolve(r.GetValue(Model)))
        {
            ConfigDir = r.GetValue(Config), Ema = _ema && r.GetValue(Ema), UnetFile = r.GetValue(Unet), Variant = variant,
        };
}

/// <summary>InstaFlow's fine-tune merge (local_gradio.py get_dW_and_merge): --merge-finetune, --merge-base, --merge-alpha, --dw, --save-dw.</summary>
internal sealed class MergeOptions
{
    public readonly Option<string?> Finetune = new("--merge-finetune") { Description = "a full SD-1.5 fine-tune (folder or file): its UNet change (fine-tune - base) is added, its VAE and text encoder are used" };
    public readonly Option<string?> Base = new("--merge-base") { Description = "the SD-1.5 the fine-tune started from (folder or file), for the UNet change" };
    public readonly Option<float> Alpha = new("--merge-alpha") { Description = "factor of the added UNet change", DefaultValueFactory = _ => 1f };
    public readonly Option<string?> Dw = new("--dw") { Description = "a saved UNet change (dW dict, .pt or .safetensors) to add instead of computing it from --merge-base" };
    public readonly Option<string?> SaveDw = new("--save-dw") { Description = "write the computed UNet change to this .safetensors file for reuse with --dw" };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Finetune, Base, Alpha, Dw, SaveDw }) cmd.Options.Add(o);
    }

    /// <summary>The merge part of the additions; configDir is the --config that single files of the merge are read with.</summary>
    public ModelAdditions ApplyTo(ModelAdditions a, ParseResult r, string? configDir) => a with
    {
        MergeFinetune = r.GetValue(Finetune), MergeBase = r.GetValue(Base), MergeAlpha = r.GetValue(Alpha),
        DwFile = r.GetValue(Dw), SaveDwFile = r.GetValue(SaveDw), MergeConfigDir = configDir,
    };
}
