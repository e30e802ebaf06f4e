// The manifest of one triplet-generation process (shard i of n): every generation parameter, the prompts file's
// sha256, and the sha256 of each shard file it completed. Written atomically (temp file + rename).
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using InstaFlow.IO;

namespace InstaFlow.Training.Triplets;

public sealed record ShardEntry(int Index, string File, long First, int Count, string Sha256);

public sealed class TripletManifest
{
    public const string Format = "instaflow-triplets/1";

    /// <summary>Generation parameters as invariant strings; equal dictionaries mean interchangeable shard files.</summary>
    public required SortedDictionary<string, string> Parameters { get; init; }
    public required int ShardIndex { get; init; }
    public required int ShardCount { get; init; }
    public List<ShardEntry> Shards { get; init; } = new();

    /// <summary>"manifest.json" for a single process, "manifest-{i}-of-{n}.json" otherwise, so processes never share a file.</summary>
    public static string FileName(int index, int of) => of == 1 ? "manifest.json" : $"manifest-{index}-of-{of}.json";

    /// <summary>sha256 over the sorted parameters: stored in every shard file to recognise files of this run.</summary>
    public static string ParametersHash(SortedDictionary<string, string> p) =>
        Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(p)));

    public static string FileSha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    public void Save(string path)
    {
        var root = new JsonObject
        {
            ["format"] = Format,
            ["parameters"] = new JsonObject(Parameters.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["shard_index"] = ShardIndex,
            ["shard_count"] = ShardCount,
            ["shards"] = new JsonArray(Shards.OrderBy(s => s.Index).Select(s => (JsonNode)new JsonObject
            {
                ["index"] = s.Index, ["file"] = s.File, ["first"] = s.First, ["count"] = s.Count, ["sha256"] = s.Sha256,
            }).ToArray()),
        };
        SafeFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    public static TripletManifest Load(string path)
    {
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            if ((string?)root["format"] != Format) throw new InvalidInputException($"{path}: not a triplet manifest (format {(string?)root["format"] ?? "missing"}, expected {Format})");
            var p = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in root["parameters"]!.AsObject()) p[k] = (string)v!;
            return new TripletManifest
            {
                Parameters = p,
                ShardIndex = (int)root["shard_index"]!,
                ShardCount = (int)root["shard_count"]!,
                Shards = root["shards"]!.AsArray().Select(s => new ShardEntry((int)s!["index"]!, (string)s["file"]!, (long)s["first"]!, (int)s["count"]!, (string)s["sha256"]!)).ToList(),
            };
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidInputException($"{path}: unreadable manifest ({e.Message})");
        }
    }

    /// <summary>The first parameter that differs, as "key: a vs b", or null when the runs match.</summary>
    public static string? FirstDifference(SortedDictionary<string, string> a, SortedDictionary<string, string> b)
    {
        foreach (var k in a.Keys.Union(b.Keys).OrderBy(k => k, StringComparer.Ordinal))
        {
            a.TryGetValue(k, out var va); b.TryGetValue(k, out var vb);
            if (va != vb) return string.Create(CultureInfo.InvariantCulture, $"{k}: {va ?? "(absent)"} vs {vb ?? "(absent)"}");
        }
        return null;
    }
}
