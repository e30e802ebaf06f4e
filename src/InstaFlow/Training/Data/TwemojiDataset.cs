// The Twemoji captioned dataset (npm package emoji-datasource-twitter@16.0.0, art CC-BY 4.0 by Twitter/X): the
// 64x64 PNGs composited onto white, captions from emoji.json, and a fixed 5% evaluation split.
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using InstaFlow.IO;

namespace InstaFlow.Training.Data;

/// <summary>One image: its file, the main caption (lower-case name), extra captions, its subcategory and split.</summary>
public sealed record TwemojiItem(string File, string Caption, string[] ExtraCaptions, string Category, string Subcategory, bool IsEval);

public static class TwemojiDataset
{
    public const string Package = "emoji-datasource-twitter@16.0.0";
    public const string CaptionsFile = "captions.jsonl";

    /// <summary>The evaluation rule: images sorted by file name (ordinal), every 20th (index % 20 == 0) is held out.</summary>
    public static bool IsEvalIndex(int sortedIndex) => sortedIndex % 20 == 0;

    private static readonly Dictionary<string, string> SkinTones = new()
    {
        ["1F3FB"] = "light skin tone", ["1F3FC"] = "medium-light skin tone", ["1F3FD"] = "medium skin tone",
        ["1F3FE"] = "medium-dark skin tone", ["1F3FF"] = "dark skin tone",
    };

    /// <summary>
    /// The emoji a caption names, without its skin tones: Parse writes a variation's caption as "name: tone, tone", so
    /// all the variations of one emoji (and the emoji itself) share this key. Other captions are their own key.
    /// </summary>
    public static string EmojiKey(string caption)
    {
        int colon = caption.LastIndexOf(": ", StringComparison.Ordinal);
        if (colon < 0) return caption;
        var parts = caption[(colon + 2)..].Split(", ");
        return parts.All(SkinTones.ContainsValue) ? caption[..colon] : caption;
    }

    /// <summary>
    /// Gets the package (npm pack, or a local .tgz) and writes images/ and captions.jsonl into outDir; returns the number
    /// of images. Progress counts images written.
    /// </summary>
    public static int Build(string outDir, string? packageTgz = null, Action<string>? log = null, IProgress<JobProgress>? progress = null)
    {
        Directory.CreateDirectory(outDir);
        string tgz = packageTgz ?? NpmPack(outDir, log);
        if (!File.Exists(tgz)) throw new FileNotFoundException($"package file not found: {tgz}", tgz);

        var pngs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        byte[]? emojiJson = null;
        using (var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress))
        using (var tar = new TarReader(gz))
        {
            while (tar.GetNextEntry() is { } e)
            {
                if (e.DataStream == null) continue;
                if (e.Name == "package/emoji.json") emojiJson = ReadAll(e.DataStream);
                else if (e.Name.StartsWith("package/img/twitter/64/", StringComparison.Ordinal) && e.Name.EndsWith(".png", StringComparison.Ordinal))
                    pngs[Path.GetFileName(e.Name)] = ReadAll(e.DataStream);
            }
        }
        if (emojiJson == null) throw new InvalidInputException($"{tgz}: no package/emoji.json inside; is this {Package}?");

        var items = Parse(emojiJson, tgz).Where(i => pngs.ContainsKey(i.File)).OrderBy(i => i.File, StringComparer.Ordinal).ToList();
        var imgDir = Path.Combine(outDir, "images");
        Directory.CreateDirectory(imgDir);
        var lines = new List<string>();
        for (int k = 0; k < items.Count; k++)
        {
            var it = items[k] with { IsEval = IsEvalIndex(k) };
            var rgb = Png.Decode(pngs[it.File], it.File).ToRgbOnWhite();
            Png.Write(Path.Combine(imgDir, it.File), rgb.Width, rgb.Height, 3, rgb.Pixels);
            lines.Add(JsonSerializer.Serialize(new
            {
                file = it.File, caption = it.Caption, extra_captions = it.ExtraCaptions, category = it.Category,
                subcategory = it.Subcategory, split = it.IsEval ? "eval" : "train",
            }));
            progress?.Report(new JobProgress(k + 1, items.Count));
        }
        SafeFile.WriteAllText(Path.Combine(outDir, CaptionsFile), string.Join('\n', lines) + "\n");
        log?.Invoke($"wrote {items.Count} images ({Enumerable.Range(0, items.Count).Count(IsEvalIndex)} held out for evaluation) to {outDir}");
        return items.Count;
    }

    /// <summary>Every emoji (and skin-tone variation) with a Twitter image, with captions from its names.</summary>
    internal static IEnumerable<TwemojiItem> Parse(byte[] json, string source)
    {
        using var doc = JsonDocument.Parse(json);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            string name = Str(e, "name").ToLowerInvariant();
            string cat = Str(e, "category"), sub = Str(e, "subcategory");
            var shorts = e.TryGetProperty("short_names", out var sn) ? sn.EnumerateArray().Select(x => x.GetString()!.Replace('_', ' ')).ToArray() : Array.Empty<string>();
            if (Bool(e, "has_img_twitter"))
                yield return new TwemojiItem(Str(e, "image"), name, shorts.Append(sub).ToArray(), cat, sub, false);
            if (!e.TryGetProperty("skin_variations", out var sv) || sv.ValueKind != JsonValueKind.Object) continue;
            foreach (var v in sv.EnumerateObject())
            {
                if (!Bool(v.Value, "has_img_twitter")) continue;
                var tones = string.Join(", ", v.Name.Split('-').Select(t => SkinTones.TryGetValue(t, out var n) ? n : t.ToLowerInvariant()));
                yield return new TwemojiItem(Str(v.Value, "image"), $"{name}: {tones}", shorts.Select(s => $"{s}: {tones}").Append(sub).ToArray(), cat, sub, false);
            }
        }
    }

    /// <summary>Reads captions.jsonl written by <see cref="Build"/>.</summary>
    public static List<TwemojiItem> Load(string dir)
    {
        var path = Path.Combine(dir, CaptionsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found; create the dataset with `instaflow data twemoji --out {dir}`", path);
        var list = new List<TwemojiItem>();
        int line = 0;
        foreach (var l in File.ReadLines(path))
        {
            line++;
            try
            {
                using var d = JsonDocument.Parse(l);
                var r = d.RootElement;
                list.Add(new TwemojiItem(Str(r, "file"), Str(r, "caption"), r.GetProperty("extra_captions").EnumerateArray().Select(x => x.GetString()!).ToArray(),
                    Str(r, "category"), Str(r, "subcategory"), Str(r, "split") == "eval"));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidInputException($"{path}:{line}: malformed caption record ({ex.Message})");
            }
        }
        return list;
    }

    private static string NpmPack(string outDir, Action<string>? log)
    {
        var work = Path.Combine(outDir, ".npm-pack");
        Directory.CreateDirectory(work);
        var existing = Directory.GetFiles(work, "emoji-datasource-twitter-16.0.0.tgz");
        if (existing.Length == 1) return existing[0];
        log?.Invoke($"npm pack {Package} ...");
        var psi = new ProcessStartInfo("npm", $"pack {Package} --silent") { WorkingDirectory = work, RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException($"npm is not installed, so {Package} cannot be fetched: install Node.js and npm (e.g. apt-get install npm), or download the package .tgz elsewhere and pass it with --package FILE");
        }
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"npm pack {Package} failed (exit {p.ExitCode}): {err.Trim().Split('\n').LastOrDefault()}");
        var tgz = Directory.GetFiles(work, "*.tgz");
        if (tgz.Length != 1) throw new InvalidOperationException($"npm pack {Package} produced no single .tgz in {work}");
        return tgz[0];
    }

    private static byte[] ReadAll(Stream s) { using var ms = new MemoryStream(); s.CopyTo(ms); return ms.ToArray(); }
    private static string Str(JsonElement e, string k) => e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
    private static bool Bool(JsonElement e, string k) => e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.True;
}
