// Lenient reader for diffusers/transformers config.json files: accepts the bare Infinity/NaN tokens Python writes,
// ignores keys we do not use, range-checks the keys that size a network (before anything is allocated), and reports
// unsupported values naming the file, the key and the value.
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
            CheckStrings(path, doc.RootElement);
            return new ConfigFile(path, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{path}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>
    /// Reads every string and key once: System.Text.Json decodes escapes lazily, so a lone surrogate ("\ud800") would
    /// otherwise throw InvalidOperationException wherever a reader first touches it.
    /// </summary>
    private static void CheckStrings(string path, JsonElement e)
    {
        try
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.String: e.GetString(); break;
                case JsonValueKind.Array: foreach (var x in e.EnumerateArray()) CheckStrings(path, x); break;
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject()) { _ = p.Name; CheckStrings(path, p.Value); }
                    break;
            }
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidInputException($"{path}: a string is not valid Unicode ({ex.Message})");
        }
    }

    public bool Has(string key) => _root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    private JsonElement? Get(string key) => _root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>
    /// Sane bounds for the keys that decide how much a model allocates or computes, wide enough for every SD-1.5,
    /// SD-2, SDXL and CLIP checkpoint (and the tiny test models) but refusing the values that would exhaust memory
    /// (layers_per_block = 1e9), divide by zero (zero heads) or index out of range (empty lists). Checked by name in
    /// every config read through this class, so a new config class gets them without code; raise a bound here when
    /// a real model needs it.
    /// </summary>
    private static readonly Dictionary<string, (double Min, double Max)> Bounds = new(StringComparer.Ordinal)
    {
        ["layers_per_block"] = (1, 16), ["num_hidden_layers"] = (1, 128), ["transformer_layers_per_block"] = (1, 32),
        ["block_out_channels"] = (1, 8192), ["encoder_block_out_channels"] = (1, 8192), ["decoder_block_out_channels"] = (1, 8192),
        ["conditioning_embedding_out_channels"] = (1, 8192), ["num_encoder_blocks"] = (0, 16), ["num_decoder_blocks"] = (0, 16),
        ["num_attention_heads"] = (1, 256), ["attention_head_dim"] = (1, 1024),
        ["sample_size"] = (1, 4096), ["image_size"] = (1, 4096), ["patch_size"] = (1, 1024),
        ["in_channels"] = (1, 64), ["out_channels"] = (1, 64), ["latent_channels"] = (1, 64), ["num_channels"] = (1, 64),
        ["conditioning_channels"] = (1, 64), ["norm_num_groups"] = (1, 1024), ["cross_attention_dim"] = (1, 16384),
        ["hidden_size"] = (1, 16384), ["intermediate_size"] = (1, 65536), ["projection_dim"] = (1, 16384),
        ["vocab_size"] = (1, 1_000_000), ["max_position_embeddings"] = (1, 4096),
        ["eos_token_id"] = (0, 999_999), ["bos_token_id"] = (0, 999_999), ["pad_token_id"] = (0, 999_999),
        ["upsampling_scaling_factor"] = (1, 8), ["downsample_padding"] = (0, 8),
        ["num_train_timesteps"] = (1, 100_000), ["steps_offset"] = (0, 100_000),
        ["beta_start"] = (double.Epsilon, 1 - 1e-9), ["beta_end"] = (double.Epsilon, 1 - 1e-9),
        // Latents are divided by it: zero makes every image NaN, a negative one inverts it.
        ["scaling_factor"] = (1e-6, 1000),
    };

    /// <summary>The most entries a bounded list key may have (UNet and VAE levels, per-level counts).</summary>
    public const int MaxListEntries = 16;

    private void CheckBounds(string key, double value, string raw)
    {
        if (!Bounds.TryGetValue(key, out var b) || (value >= b.Min && value <= b.Max)) return;
        string min = b.Min == double.Epsilon ? "more than 0" : b.Min.ToString(System.Globalization.CultureInfo.InvariantCulture);
        throw new InvalidInputException($"{Path}: '{key}' is {raw}, outside the sane range {min} .. {b.Max.ToString(System.Globalization.CultureInfo.InvariantCulture)} for this model family (a corrupt or hand-edited config?)");
    }

    private void CheckCount(string key, int count)
    {
        if (!Bounds.ContainsKey(key) || (count >= 1 && count <= MaxListEntries)) return;
        throw new InvalidInputException($"{Path}: '{key}' has {count} entries; it needs 1 to {MaxListEntries}");
    }

    public int Int(string key, int dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.Number && v.Value.TryGetInt32(out int i))
        {
            CheckBounds(key, i, v.Value.GetRawText());
            return i;
        }
        if (v.Value.ValueKind == JsonValueKind.Number && Bounds.ContainsKey(key)) CheckBounds(key, v.Value.GetDouble(), v.Value.GetRawText());
        throw Bad(key, v.Value, "an integer");
    }

    public float Float(string key, float dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        float f;
        if (v.Value.ValueKind == JsonValueKind.Number) f = (float)v.Value.GetDouble();
        else if (v.Value.ValueKind != JsonValueKind.String || !float.TryParse(v.Value.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out f))
            throw Bad(key, v.Value, "a number");
        // NaN fails every comparison, so a bounded key refuses it too.
        if (Bounds.ContainsKey(key) && !double.IsFinite(f)) CheckBounds(key, double.NaN, v.Value.GetRawText());
        CheckBounds(key, f, v.Value.GetRawText());
        return f;
    }

    public double Double(string key, double dflt)
    {
        var v = Get(key);
        if (v == null) return dflt;
        if (v.Value.ValueKind == JsonValueKind.Number)
        {
            CheckBounds(key, v.Value.GetDouble(), v.Value.GetRawText());
            return v.Value.GetDouble();
        }
        if (Bounds.ContainsKey(key)) CheckBounds(key, double.NaN, v.Value.GetRawText());
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
        CheckCount(key, v.Value.GetArrayLength());
        var list = v.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var i) ? i : throw Bad(key, v.Value, "a list of integers")).ToArray();
        foreach (var i in list) CheckBounds(key, i, v.Value.GetRawText());
        return list;
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
