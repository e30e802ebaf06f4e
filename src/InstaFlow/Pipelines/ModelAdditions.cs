// What `generate`, `serve` and `convert` can put on top of a loaded model: InstaFlow's fine-tune merge, TAESD as the
// decoder, LoRA files merged into the weights and a ControlNet for control images. The one path for additions, so both front ends treat them alike.
using InstaFlow.Models.Lora;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;

namespace InstaFlow.Pipelines;

public sealed record ModelAdditions
{
    public string? TaesdDir { get; init; }
    public IReadOnlyList<string> LoraFiles { get; init; } = [];
    public float LoraScale { get; init; } = 1f;
    /// <summary>A diffusers ControlNetModel folder; requests with a control image then run InstaFlow's ControlNet pipeline.</summary>
    public string? ControlNetDir { get; init; }

    // InstaFlow's fine-tune merge (see FinetuneMerge): the fine-tune, the base it started from or a saved dW, alpha.
    public string? MergeFinetune { get; init; }
    public string? MergeBase { get; init; }
    public float MergeAlpha { get; init; } = 1f;
    public string? DwFile { get; init; }
    public string? SaveDwFile { get; init; }
    /// <summary>Configs for single-file fine-tunes and bases (as the model's --config).</summary>
    public string? MergeConfigDir { get; init; }

    /// <summary>Applies the additions to freshly loaded components; log gets one line per addition.</summary>
    public void ApplyTo(SdComponents model, Action<string>? log = null)
    {
        if (!float.IsFinite(LoraScale)) throw new InvalidInputException($"the LoRA scale must be a finite number, got {LoraScale}");
        // The merges below edit weights in place or replace them: packs made from the old values must not survive
        // (edits through the tensors' writable accessors drop them already; this covers every other way).
        model.DropWeightPacks();
        try { Apply(model, log); }
        finally { model.DropWeightPacks(); }
    }

    private void Apply(SdComponents model, Action<string>? log)
    {
        // The merge changes the base weights, so it comes before anything layered on top of them (LoRAs).
        FinetuneMerge.Apply(model, this, log);
        if (TaesdDir != null)
        {
            model.DecodeWith(AutoencoderTiny.Load(TaesdDir).Model);
            model.Additions.Add("taesd");
            log?.Invoke($"decoding with TAESD from {TaesdDir}");
        }
        foreach (var file in LoraFiles)
        {
            var updates = Lora.Read(file, model.TextEncoder, model.Unet);
            Lora.Merge(updates, model.TextEncoder, model.Unet, LoraScale, LoraScale);
            model.Additions.Add(FormattableString.Invariant($"lora {Path.GetFileName(file)} x{LoraScale:G4}"));
            log?.Invoke($"merged LoRA {Path.GetFileName(file)}: {updates.Count} layers at scale {LoraScale}");
        }
        if (ControlNetDir != null)
        {
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(ControlNetDir));
            model.AttachControlNet(ControlNetModel.Load(ControlNetDir).Model, name);
            log?.Invoke($"ControlNet {name} from {ControlNetDir}");
        }
    }
}
