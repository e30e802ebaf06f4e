// What `generate` and `serve` can put on top of a loaded pipeline folder: TAESD as the decoder and LoRA files merged
// into the weights. One place, so both front ends treat the options alike.
using InstaFlow.Models.Lora;
using InstaFlow.Models.Vae;

namespace InstaFlow.Pipelines;

public sealed record ModelAdditions
{
    public string? TaesdDir { get; init; }
    public IReadOnlyList<string> LoraFiles { get; init; } = [];
    public float LoraScale { get; init; } = 1f;

    /// <summary>Applies the additions to freshly loaded components; log gets one line per addition.</summary>
    public void ApplyTo(SdComponents model, Action<string>? log = null)
    {
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
    }
}
