// Latent tensors on disk: one F32 tensor [B, C, h, w] in a safetensors file, named `latents` (or the only tensor).
using InstaFlow.Tensors;

namespace InstaFlow.IO;

public static class LatentsFile
{
    public static Tensor Read(string path)
    {
        using var f = SafeTensors.Open(path);
        string name = f.Contains("latents") ? "latents"
            : f.Tensors.Count == 1 ? f.Tensors[0].Name
            : throw new InvalidInputException($"{path}: holds {f.Tensors.Count} tensors and none is named 'latents'; save the noise as a tensor named 'latents'");
        var info = f.Info(name);
        if (info.Shape.Length != 4) throw new InvalidInputException($"{path}: tensor '{name}' has shape {ShapeUtil.Format(info.Shape)}; latents must be [B, C, h, w]");
        return f.ReadF32(name).ClonePersistent();
    }

    public static void Write(string path, Tensor latents) =>
        SafeTensors.Save(path, new[] { ("latents", latents) }, metadata: new Dictionary<string, string> { ["format"] = "pt" });
}
