// Loads weights into a module by diffusers/transformers key names from any weights file (safetensors or a PyTorch
// checkpoint, see IO/WeightsFile), with optional key renaming (for legacy checkpoints) and a report of missing and
// unexpected keys.
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Nn;

/// <summary>How loaded weights are held in memory.</summary>
public enum WeightPrecision
{
    /// <summary>Every tensor widened to float32: for training, merging or editing weights.</summary>
    Float32,
    /// <summary>
    /// Linear and Conv2d weights stay F16/BF16 when the file stores them so (half the memory; widened exactly inside
    /// the kernels, so outputs equal Float32's); other tensors are widened. Inference only.
    /// </summary>
    Stored,
}

public static class StateDictLoader
{
    /// <summary>
    /// Reads every tensor of the file (F32 stays memory-mapped; F16/BF16 are widened once, or with
    /// <see cref="WeightPrecision.Stored"/> kept as they are for Linear and Conv2d weights) and loads it into the
    /// module. rename maps a file key to the module's key; ignoredKeys are skipped without being reported.
    /// </summary>
    public static LoadReport Load(Module module, string path, Func<string, string>? rename = null, IEnumerable<string>? ignoredKeys = null, bool strict = true,
        WeightPrecision precision = WeightPrecision.Float32)
    {
        using var file = WeightsFile.Open(path);
        return Load(module, file, rename, ignoredKeys, strict, precision);
    }

    /// <summary>Loads from an open weights file (e.g. a renamed view of a single-file checkpoint); the file stays open.</summary>
    public static LoadReport Load(Module module, IWeightsFile file, Func<string, string>? rename = null, IEnumerable<string>? ignoredKeys = null, bool strict = true,
        WeightPrecision precision = WeightPrecision.Float32)
    {
        var path = file.Path;
        var ignore = new HashSet<string>(ignoredKeys ?? Array.Empty<string>());
        var state = new Dictionary<string, Tensor>();
        var warnings = new List<string>();
        var expected = module.NamedParameters().ToDictionary(x => x.Name, x => x.Param.Shape);
        var halfOk = precision == WeightPrecision.Stored
            ? module.NamedParameters().Where(x => x.Param.AcceptsStoredPrecision).Select(x => x.Name).ToHashSet()
            : [];
        Tensor Read(string name, string key) => halfOk.Contains(key) ? file.ReadStored(name) : file.ReadF32(name);
        try
        {
            foreach (var info in file.Tensors)
            {
                if (ignore.Contains(info.Name)) continue;
                var key = rename?.Invoke(info.Name) ?? info.Name;
                if (state.ContainsKey(key)) throw new InvalidInputException($"{path}: two tensors map to the key '{key}'");
                if (expected.TryGetValue(key, out var shape) && !ShapeUtil.SameShape(info.Shape, shape))
                {
                    // Old checkpoints store attention projections as 1x1 convs [C, C, 1, 1] where a linear [C, C] is expected.
                    if (info.IsFloat && ShapeUtil.Numel(info.Shape) == ShapeUtil.Numel(shape) && info.Shape.Length == 4 && shape.Length == 2 && info.Shape[2] == 1 && info.Shape[3] == 1)
                    {
                        using (var flat = Read(info.Name, key)) state[key] = flat.Reshape(shape);
                        continue;
                    }
                    throw new InvalidInputException($"{path}: tensor '{info.Name}' has shape {ShapeUtil.Format(info.Shape)} but the model built from config.json expects {ShapeUtil.Format(shape)}; the weights do not belong to this config");
                }
                if (!info.IsFloat)
                {
                    if (!strict || !expected.ContainsKey(key)) { state[key] = null!; continue; }
                    throw new InvalidInputException($"{path}: tensor '{info.Name}' has dtype {info.DType}, expected a floating-point type");
                }
                state[key] = Read(info.Name, key);
                if (WeightCheck.AllNonFinite(state[key]))
                    warnings.Add($"{path}: tensor '{info.Name}' is entirely NaN/Inf; images will be blank (check the weights with generate --check-weights)");
            }
            foreach (var k in state.Where(kv => kv.Value == null).Select(kv => kv.Key).ToList()) state.Remove(k);
            return module.LoadStateDict(state, strict, path) with { Warnings = warnings };
        }
        catch
        {
            // The module did not take them: give back what was read (zero-copy views hold the file's mapping).
            foreach (var t in state.Values) t?.Dispose();
            throw;
        }
    }
}
