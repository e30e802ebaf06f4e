// Writes loaded components as a diffusers folder (safetensors, F32 or F16): how a single-file checkpoint, a .bin
// folder or a merged fine-tune becomes a folder that SdComponents.Load reads back to the same weights.
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Clip;

namespace InstaFlow.Pipelines;

public static class ModelConverter
{
    /// <summary>
    /// Writes model (loaded from source) to outDir. The tokenizer files come from the source folder, else --config's,
    /// else the built-in CLIP tokenizer; model_index.json is written last, so a folder that has it is complete.
    /// </summary>
    public static void WriteDiffusers(SdComponents model, ModelSource source, string outDir, SafeTensorDType dtype = SafeTensorDType.F32)
    {
        var folder = Directory.Exists(source.Path) ? source.Path : source.ConfigDir;
        string? staged = null;
        string tokenizerDir;
        if (folder != null) tokenizerDir = DiffusersFolder.Open(folder).Component("tokenizer");
        else
        {
            // DiffusersWriter copies tokenizer files from a folder: stage the embedded ones beside the output.
            staged = Path.Combine(outDir, ".tokenizer-embedded");
            ClipTokenizer.WriteStandardFiles(staged);
            tokenizerDir = staged;
        }
        try
        {
            DiffusersWriter.WritePipeline(outDir, model.TextEncoder, model.Unet, model.Vae, tokenizerDir, dtype);
        }
        finally
        {
            if (staged != null) Directory.Delete(staged, recursive: true);
        }
        if (folder != null && Path.Combine(folder, "scheduler", "scheduler_config.json") is var scheduler && File.Exists(scheduler))
        {
            Directory.CreateDirectory(Path.Combine(outDir, "scheduler"));
            File.Copy(scheduler, Path.Combine(outDir, "scheduler", "scheduler_config.json"), overwrite: true);
        }
    }
}
