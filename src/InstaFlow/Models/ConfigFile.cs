// Lenient reader for diffusers/transformers config.json files: accepts the bare Infinity/NaN tokens Python writes,
// ignores keys we do not use, and reports unsupported values naming the file, the key and the value.
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InstaFlow.Models;

public sealed class ConfigFile
{
    private readonly JsonElement _root;
    public string Path { get; }

    private ConfigFile(string path, JsonElement root) { Path = path; _root = root; }

    public static ConfigFile Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config file not found (a diffusers model folder has one config.json per component)", path);
        return Parse(File.ReadAllText(path), path);
    }

    public static ConfigFile Parse(string json, string path)
    {
        // Python's json writes -Infinity/Infinity/NaN bare; System.Text.Json only takes them quoted.
        var fixedJson = Regex.Replace(json, @"(?<=[:\[,]\s*)(-?Infinity|NaN)(?=\s*[,\]}])", "\"$1\"");
        try
        {
            using var doc = JsonDocument.Parse(fixedJson, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidInputException($"{path}: expected a JSON object at the top level");
            return new ConfigFile(path, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{path}: not valid JSON ({e.Message})");
        }
    }

    public bool Has(string key) => _root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    private JsonElement? Get(string key) => _root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public int Int(string key, int dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.Number && v.Value.TryGetInt32(out int i)) return i;
        throw Bad(key, v.Value, "an integer");
    }

    public float Float(string key, float dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.Number) return (float)v.Value.GetDouble();
        if (v.Value.ValueKind == JsonValueKind.String && float.TryParse(v.Value.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f)) return f;
        throw Bad(key, v.Value, "a number");
    }

    public double Double(string key, double dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.Number) return v.Value.GetDouble();
        if (v.Value.ValueKind == JsonValueKind.String)
        {
            var s = v.Value.GetString();
            if (s == "-Infinity") return double.NegativeInfinity;
            if (s == "Infinity") return double.PositiveInfinity;
            if (s == "NaN") return double.NaN;
        }
        throw Bad(key, v.Value, "a number");
    }

    public bool Bool(string key, bool dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        return v.Value.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Bad(key, v.Value, "true or false") };
    }

    public string? String(string key, string? dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.String) return v.Value.GetString();
        throw Bad(key, v.Value, "a string");
    }

    public string[] Strings(string key, string[] dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind != JsonValueKind.Array) throw Bad(key, v.Value, "a list of strings");
        return v.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Bad(key, v.Value, "a list of strings")).ToArray();
    }

    public float[] Floats(string key, float[] dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind != JsonValueKind.Array) throw Bad(key, v.Value, "a list of numbers");
        return v.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number ? (float)e.GetDouble() : throw Bad(key, v.Value, "a list of numbers")).ToArray();
    }

    public int[] Ints(string key, int[] dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind != JsonValueKind.Array) throw Bad(key, v.Value, "a list of integers");
        return v.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var i) ? i : throw Bad(key, v.Value, "a list of integers")).ToArray();
    }

    /// <summary>An int applied to every level, or a list with one entry per level (diffusers' "int or tuple").</summary>
    public int[] IntOrList(string key, int levels, int dflt)
    {
        var v = Get(key);
        if (v == null) return Enumerable.Repeat(dflt, levels).ToArray();
        if (v.Value.ValueKind == JsonValueKind.Number) return Enumerable.Repeat(Int(key, dflt), levels).ToArray();
        var l = Ints(key, Array.Empty<int>());
        if (l.Length != levels) throw new InvalidInputException($"{Path}: '{key}' has {l.Length} entries but the model has {levels} levels");
        return l;
    }

    /// <summary>Rejects a value we cannot honour, e.g. a block type or activation this implementation lacks.</summary>
    /// <summary>A nested object (e.g. CLIPConfig's text_config) read with the same rules; errors name "file:key".</summary>
    public ConfigFile Section(string key)
    {
        var v = Get(key) ?? throw new InvalidInputException($"{Path}: no \"{key}\" section");
        if (v.ValueKind != JsonValueKind.Object) throw Bad(key, v, "an object");
        return new ConfigFile($"{Path}:{key}", v);
    }

    public void Require(string key, bool ok, string value, string supported)
    {
        if (!ok) throw new NotSupportedException($"{Path}: unsupported value {value} for '{key}' (supported: {supported})");
    }

    private InvalidInputException Bad(string key, JsonElement v, string expected) =>
        new($"{Path}: '{key}' should be {expected}, got {v.GetRawText()}");
}
