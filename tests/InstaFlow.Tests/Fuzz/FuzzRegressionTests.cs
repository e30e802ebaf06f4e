// Replays what the coverage-guided fuzzer (fuzz/run.sh: SharpFuzz + AFL++) kept: its findings and its corpus of inputs
// that reached new branches of the safetensors and PNG readers. Each must load or fail with InvalidInputException.
using InstaFlow.IO;

namespace InstaFlow.Tests.Fuzz;

public sealed class FuzzRegressionTests
{
    private static string Root => Path.Combine(TestUtil.RepoRoot, "tests", "InstaFlow.Tests", "Fuzz", "Regressions");

    public static IEnumerable<object[]> Cases(string target) =>
        Directory.GetFiles(Path.Combine(Root, target), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(f => new object[] { Path.GetRelativePath(Root, f) });

    public static IEnumerable<object[]> SafeTensorsCases() => Cases("safetensors");
    public static IEnumerable<object[]> PngCases() => Cases("png");

    [Theory]
    [MemberData(nameof(SafeTensorsCases))]
    public void SafeTensors_FuzzerInput_LoadsOrIsBadInput(string file)
    {
        // opened from a copy with the extension the reader expects; the reader decides by content, not by name
        var copy = Path.Combine(Path.GetTempPath(), $"instaflow-fuzzcase-{Guid.NewGuid():N}.safetensors");
        File.Copy(Path.Combine(Root, file), copy);
        try
        {
            using var f = SafeTensors.Open(copy);
            foreach (var t in f.Tensors)
            {
                f.ReadF32(t.Name).Dispose();
                using var stored = f.ReadStored(t.Name);
                stored.ToArray();
            }
        }
        catch (InvalidInputException) { }
        finally { File.Delete(copy); }
    }

    [Theory]
    [MemberData(nameof(PngCases))]
    public void Png_FuzzerInput_DecodesOrIsBadInput(string file)
    {
        try { Png.Decode(File.ReadAllBytes(Path.Combine(Root, file)), file); }
        catch (InvalidInputException) { }
    }
}
