// Writes diffusers folders: a copy of a pipeline folder with one component's weights replaced (e.g. a reflowed
// UNet next to the teacher's text encoder, tokenizer and VAE), every file written to a temp name then renamed.
using InstaFlow.Nn;

namespace InstaFlow.Pipelines;

public static class DiffusersWriter
{
    /// <summary>Copies every component of srcDir except the UNet weights into dstDir, then saves unet's weights (F32).</summary>
    public static void WriteWithNewUnet(string srcDir, string dstDir, Module unet, SafeTensorDType dtype = SafeTensorDType.F32)
    {
        var src = DiffusersFolder.Open(srcDir);
        Directory.CreateDirectory(dstDir);
        CopyAtomic(Path.Combine(src.Root, "model_index.json"), Path.Combine(dstDir, "model_index.json"));
        foreach (var comp in src.Components.Keys.Append("scheduler").Distinct())
        {
            var from = Path.Combine(src.Root, comp);
            if (!Directory.Exists(from)) continue;
            var to = Path.Combine(dstDir, comp);
            Directory.CreateDirectory(to);
            foreach (var f in Directory.GetFiles(from))
            {
                var name = Path.GetFileName(f);
                // The new UNet replaces every weights file of the teacher's (variants included).
                if (comp == "unet" && name.EndsWith(".safetensors", StringComparison.Ordinal)) continue;
                CopyAtomic(f, Path.Combine(to, name));
            }
        }
        SafeTensors.Save(Path.Combine(dstDir, "unet", "diffusion_pytorch_model.safetensors"), unet.NamedParameters().Select(p => (p.Name, p.Param.Value)), dtype);
    }

    private static void CopyAtomic(string from, string to)
    {
        if (Path.GetFullPath(from) == Path.GetFullPath(to)) return;
        var tmp = to + ".tmp";
        File.Copy(from, tmp, overwrite: true);
        File.Move(tmp, to, overwrite: true);
    }
}
