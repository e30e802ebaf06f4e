// Opens a diffusers pipeline folder (model_index.json + one sub-folder per component): the components it lists and
// their weights files (with variants), with clear errors for unusable folders. Loading the models is SdComponents'.
using System.Text.Json;

namespace InstaFlow.Models;

public sealed class DiffusersFolder
{
    public string Root { get; }
    /// <summary>component name -> (library, class) from model_index.json (null entries omitted).</summary>
    public IReadOnlyDictionary<string, (string Library, string Class)> Components { get; }
    public string PipelineClass { get; }
    /// <summary>model_index.json's optional "_instaflow_defaults" {"steps", "guidance"}: how the model is meant to be sampled.</summary>
    public (int Steps, float Guidance)? Defaults { get; }

    private DiffusersFolder(string root, Dictionary<string, (string, string)> comps, string cls, (int, float)? defaults)
    {
        Root = root; Components = comps; PipelineClass = cls; Defaults = defaults;
    }

    public static DiffusersFolder Open(string dir)
    {
        var root = Path.GetFullPath(dir);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"model folder not found: {root}");
        var index = Path.Combine(root, "model_index.json");
        if (!File.Exists(index))
            throw new FileNotFoundException($"{root}: no model_index.json; expected a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/)", index);
        var comps = new Dictionary<string, (string, string)>();
        string cls;
        (int, float)? defaults = null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(index));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidInputException($"{index}: expected a JSON object (component name -> [library, class]), got {doc.RootElement.ValueKind}");
            cls = doc.RootElement.TryGetProperty("_class_name", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
            if (doc.RootElement.TryGetProperty("_instaflow_defaults", out var d)) defaults = ParseDefaults(d, index);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name.StartsWith('_') || p.Value.ValueKind != JsonValueKind.Array) continue;
                var a = p.Value.EnumerateArray().ToArray();
                if (a.Length == 2 && a[0].ValueKind == JsonValueKind.String && a[1].ValueKind == JsonValueKind.String)
                    comps[p.Name] = (a[0].GetString()!, a[1].GetString()!);
            }
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{index}: not valid JSON ({e.Message})");
        }
        return new DiffusersFolder(root, comps, cls, defaults);
    }

    /// <summary>Reads {"steps": N, "guidance": G}; errors name the file and the key.</summary>
    private static (int Steps, float Guidance) ParseDefaults(JsonElement e, string file)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new InvalidInputException($"{file}: _instaflow_defaults must be an object {{\"steps\": N, \"guidance\": G}}");
        int steps = e.TryGetProperty("steps", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt32(out int n) && n is >= 1 and <= 1000 ? n
            : throw new InvalidInputException($"{file}: _instaflow_defaults.steps must be a whole number from 1 to 1000");
        float guidance = e.TryGetProperty("guidance", out var g) && g.ValueKind == JsonValueKind.Number && g.GetDouble() is >= 0 and <= 100 ? (float)g.GetDouble()
            : throw new InvalidInputException($"{file}: _instaflow_defaults.guidance must be a number from 0 to 100");
        return (steps, guidance);
    }

    /// <summary>The component's sub-folder; throws naming the folder when it is missing.</summary>
    public string Component(string name)
    {
        var d = Path.Combine(Root, name);
        if (!Directory.Exists(d))
            throw new DirectoryNotFoundException($"{Root}: component folder '{name}/' is missing (an SD-1.5-family folder needs unet/, vae/, text_encoder/ and tokenizer/)");
        return d;
    }

    /// <summary>Picks `{stem}[.{variant}].safetensors`, else the PyTorch `.bin` of that name; errors list what the folder holds.</summary>
    public string Weights(string component, string stem, string? variant)
    {
        var dir = Component(component);
        var name = variant is null ? $"{stem}.safetensors" : $"{stem}.{variant}.safetensors";
        var path = Path.Combine(dir, name);
        if (File.Exists(path)) return path;
        // Older folders hold PyTorch pickles (transformers names the text encoder's pytorch_model.bin); IO.WeightsFile reads them safely.
        var binStem = stem == "model" ? "pytorch_model" : stem;
        var bin = Path.Combine(dir, variant is null ? $"{binStem}.bin" : $"{binStem}.{variant}.bin");
        if (File.Exists(bin)) return bin;
        var have = Directory.GetFiles(dir, "*.safetensors").Concat(Directory.GetFiles(dir, "*.bin")).Select(Path.GetFileName);
        throw new FileNotFoundException($"{dir}: weights file {name} not found; the folder has [{string.Join(", ", have)}]", path);
    }
}
