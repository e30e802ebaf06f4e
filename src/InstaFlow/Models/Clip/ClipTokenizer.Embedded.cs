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

    /// <summary>Writes the embedded vocab.json and merges.txt into dir (a diffusers tokenizer/ folder) through SafeFile.</summary>
    public static void WriteStandardFiles(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var (resource, name) in new[] { (VocabResource, "vocab.json"), (MergesResource, "merges.txt") })
        {
            using var src = OpenResource(resource);
            IO.SafeFile.Write(Path.Combine(dir, name), src.CopyTo);
        }
    }

    private static Stream OpenResource(string name) =>
        typeof(ClipTokenizer).Assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"embedded resource {name} is missing from the build");
}
