// The standard CLIP tokenizer (SD-1.x's) compiled into the library, for models that come as one weights file.

namespace InstaFlow.Models.Clip;

public sealed partial class ClipTokenizer
{
    private const string VocabResource = "InstaFlow.ClipTokenizer.vocab.json";
    private const string MergesResource = "InstaFlow.ClipTokenizer.merges.txt";

    /// <summary>openai/clip-vit-large-patch14's tokenizer (49408 tokens, lower case, 77 tokens), as SD-1.x uses it.</summary>
    public static ClipTokenizer Standard()
    {
        Dictionary<string, int> vocab;
        using (var v = OpenResource(VocabResource)) vocab = ReadVocab(v, "(embedded) vocab.json");
        using var merges = new StreamReader(OpenResource(MergesResource));
        return new ClipTokenizer(vocab, ReadMerges(merges, "(embedded) merges.txt"), TokenizerSettings.Default, "(embedded) vocab.json");
    }

    /// <summary>Writes the embedded vocab.json and merges.txt into dir (a diffusers tokenizer/ folder), via temp + rename.</summary>
    public static void WriteStandardFiles(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var (resource, name) in new[] { (VocabResource, "vocab.json"), (MergesResource, "merges.txt") })
        {
            var path = Path.Combine(dir, name);
            var tmp = path + ".tmp";
            using (var src = OpenResource(resource))
            using (var dst = File.Create(tmp)) src.CopyTo(dst);
            File.Move(tmp, path, overwrite: true);
        }
    }

    private static Stream OpenResource(string name) =>
        typeof(ClipTokenizer).Assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"embedded resource {name} is missing from the build");
}
