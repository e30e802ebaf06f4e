// InstaFlow's fine-tune merge (code/local_gradio.py, get_dW_and_merge + merge_dW_to_unet): dW = W_finetune - W_base
// for every UNet weight, W += dW * alpha on the loaded model's UNet, and the fine-tune's VAE and text encoder replace
// the model's. Done in float32 in the same order as the demo, so merged weights match it bit for bit.
using InstaFlow.IO;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Pipelines;

public static class FinetuneMerge
{
    /// <summary>Applies the merge the additions describe (nothing when they name none); log gets one line.</summary>
    public static void Apply(SdComponents model, ModelAdditions a, Action<string>? log = null)
    {
        if (a.MergeFinetune == null && a.DwFile == null)
        {
            if (a.MergeBase != null || a.SaveDwFile != null)
                throw new InvalidInputException("--merge-base and --save-dw go with --merge-finetune FT (the fine-tune to merge)");
            return;
        }
        if (!float.IsFinite(a.MergeAlpha)) throw new InvalidInputException($"--merge-alpha must be a finite number, got {a.MergeAlpha}");
        if (a.SaveDwFile != null && !a.SaveDwFile.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new InvalidInputException($"--save-dw {a.SaveDwFile}: the UNet change is written as safetensors; name the file *.safetensors");
        if (a.DwFile != null && (a.MergeBase != null || a.SaveDwFile != null))
            throw new InvalidInputException("--dw FILE is a saved UNet change: it replaces --merge-base (and there is nothing new to --save-dw)");
        if (a.DwFile == null && a.MergeBase == null)
            throw new InvalidInputException($"--merge-finetune {a.MergeFinetune} needs --merge-base BASE (the SD-1.5 it was fine-tuned from, a folder or file) or --dw FILE (a saved UNet change)");

        SdComponents? finetune = null, baseModel = null;
        try
        {
            if (a.MergeFinetune != null) finetune = SdComponents.Open(new ModelSource(a.MergeFinetune) { ConfigDir = ConfigFor(a.MergeFinetune, a.MergeConfigDir) });
            string what;
            if (a.DwFile != null)
            {
                using var dw = WeightsFile.Open(a.DwFile);
                AddDw(model.Unet, dw, a.MergeAlpha);
                what = FormattableString.Invariant($"dW {Path.GetFileName(a.DwFile)} x{a.MergeAlpha:G4}");
            }
            else
            {
                baseModel = SdComponents.Open(new ModelSource(a.MergeBase!) { ConfigDir = ConfigFor(a.MergeBase!, a.MergeConfigDir) });
                var dw = Difference(finetune!.Unet, baseModel.Unet, a.MergeFinetune!, a.MergeBase!);
                try
                {
                    AddDw(model.Unet, dw, a.MergeAlpha, a.MergeFinetune!);
                    if (a.SaveDwFile != null) SafeTensors.Save(a.SaveDwFile, dw);
                }
                finally { foreach (var t in dw.Values) t.Dispose(); }
                what = FormattableString.Invariant($"merge {finetune.Name} - {baseModel.Name} x{a.MergeAlpha:G4}");
            }
            if (finetune != null)
            {
                // The demo sets pipe.vae and pipe.text_encoder to the fine-tune's: same architecture, its weights.
                CopyWeights(finetune.TextEncoder, model.TextEncoder, a.MergeFinetune!);
                CopyWeights(finetune.Vae, model.Vae, a.MergeFinetune!);
                what += $", vae and text encoder of {finetune.Name}";
            }
            model.Additions.Add(what);
            log?.Invoke($"fine-tune merge: {what}" + (a.SaveDwFile != null ? $"; UNet change saved to {a.SaveDwFile}" : ""));
        }
        finally
        {
            finetune?.Dispose();
            baseModel?.Dispose();
        }
    }

    // A single-file fine-tune or base is read with the same --config as the model (the demo's models share one architecture).
    private static string? ConfigFor(string path, string? configDir) => File.Exists(path) ? configDir : null;

    /// <summary>dW[k] = finetune[k] - base[k] for every UNet parameter, in float32.</summary>
    public static Dictionary<string, Tensor> Difference(Module finetune, Module baseUnet, string finetuneName = "fine-tune", string baseName = "base")
    {
        var b = baseUnet.NamedParameters().ToDictionary(p => p.Name, p => p.Param.Value);
        var dw = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, p) in finetune.NamedParameters())
            {
                var w = p.Value;
                if (!b.TryGetValue(name, out var w0) || !ShapeUtil.SameShape(w0.Shape, w.Shape))
                    throw new InvalidInputException($"{baseName}: UNet weight '{name}' of {finetuneName} has no counterpart of shape {ShapeUtil.Format(w.Shape)}; the fine-tune and the base must be the same architecture");
                var d = Tensor.EmptyPersistent(w.ShapeArray());
                using (var wf = w.DType == TensorDType.F32 ? null : w.ToFloat32())
                using (var w0f = w0.DType == TensorDType.F32 ? null : w0.ToFloat32())
                    Subtract((wf ?? w).Span, (w0f ?? w0).Span, d.Span);
                dw[name] = d;
            }
        }
        catch { foreach (var t in dw.Values) t.Dispose(); throw; }
        return dw;
    }

    private static void Subtract(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d)
    {
        for (int i = 0; i < d.Length; i++) d[i] = a[i] - b[i];
    }

    /// <summary>W += dW * alpha for every tensor of a dW dict; every key must be a UNet weight of the same shape.</summary>
    public static void AddDw(Module unet, IWeightsFile dw, float alpha)
    {
        var own = unet.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var info in dw.Tensors)
            if (!own.TryGetValue(info.Name, out var p) || !ShapeUtil.SameShape(p.Shape, info.Shape) || !info.IsFloat)
                throw new InvalidInputException($"{dw.Path}: '{info.Name}' ({info.DType} {ShapeUtil.Format(info.Shape)}) is not a UNet weight of this model; a dW file holds the UNet change in diffusers names");
        foreach (var info in dw.Tensors)
        {
            using var d = dw.ReadF32(info.Name);
            AddScaled(own[info.Name], d, alpha);
        }
    }

    private static void AddDw(Module unet, Dictionary<string, Tensor> dw, float alpha, string source)
    {
        var own = unet.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var (name, d) in dw)
        {
            if (!own.TryGetValue(name, out var p) || !ShapeUtil.SameShape(p.Shape, d.Shape))
                throw new InvalidInputException($"{source}: UNet weight '{name}' has no counterpart of shape {ShapeUtil.Format(d.Shape)} in the model; merge a fine-tune of the same architecture");
            AddScaled(p, d, alpha);
        }
    }

    private static void AddScaled(Parameter p, Tensor d, float alpha)
    {
        // In place: memory-mapped weights are copy-on-write, so the file on disk never changes. The merge is in
        // float32 (the demo's float16 mapped to float32), so a weight kept in F16/BF16 is widened first.
        if (p.Value.DType != TensorDType.F32) p.Replace(p.Value.ToFloat32());
        var w = p.Value.Span;
        var dv = d.Span;
        for (int i = 0; i < w.Length; i++) w[i] += dv[i] * alpha;
    }

    private static void CopyWeights(Module from, Module to, string source)
    {
        var src = from.NamedParameters().ToDictionary(p => p.Name, p => p.Param.Value);
        foreach (var (name, p) in to.NamedParameters())
        {
            if (!src.TryGetValue(name, out var t) || !ShapeUtil.SameShape(t.Shape, p.Shape))
                throw new InvalidInputException($"{source}: weight '{name}' does not fit the model's; the fine-tune's VAE and text encoder must be the same architecture as the model's");
            p.Replace(t.ClonePersistent());
        }
    }
}
