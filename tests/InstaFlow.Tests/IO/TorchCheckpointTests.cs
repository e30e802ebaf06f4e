// The safe PyTorch checkpoint reader against the fixtures made by real torch.save: zip and legacy containers, views
// (strides, offsets, shared storages), F16, integer scalars, and the files it must refuse without running anything.
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public sealed class TorchCheckpointTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "single_file");

    public static IEnumerable<object[]> Probes()
    {
        using var cases = SafeTensors.Open(Path.Combine(Dir, "cases.safetensors"));
        foreach (var name in cases.Names.Where(n => n.StartsWith("probe/", StringComparison.Ordinal)))
            yield return new object[] { name };
    }

    [Theory]
    [MemberData(nameof(Probes))]
    public void ReadF32_ProbedTensor_FirstValuesMatchTorch(string probe)
    {
        // probe/<file path>/<key>: the file path may have folders (bin_folder/unet/...), the key has none.
        var rest = probe["probe/".Length..];
        int cut = FileEnd(rest);
        var file = rest[..cut];
        var key = rest[(cut + 1)..];
        using var cases = SafeTensors.Open(Path.Combine(Dir, "cases.safetensors"));
        using var w = WeightsFile.Open(Path.Combine(Dir, file));
        var info = w.Tensors.Single(t => t.Name == key);
        if (!info.IsFloat)
        {
            var expected = cases.ReadI64(probe);
            Assert.Equal(expected.Length, Math.Min(16, (int)info.Shape.Aggregate(1L, (a, b) => a * b)));
            return;
        }
        var want = cases.ReadF32(probe).ToArray();
        using var t = w.ReadF32(key);
        var got = t.ToArray().Take(want.Length).ToArray();
        float max = want.Zip(got).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(max == 0, $"{probe}: max abs diff {max}");
    }

    private static int FileEnd(string rest)
    {
        foreach (var ext in new[] { ".safetensors/", ".ckpt/", ".pt/", ".bin/" })
            if (rest.IndexOf(ext, StringComparison.Ordinal) is int i and >= 0) return i + ext.Length - 1;
        throw new InvalidOperationException(rest);
    }

    [Fact]
    public void Open_LegacyAndZipCkpt_SameTensorsAndValues()
    {
        using var zip = WeightsFile.Open(Path.Combine(Dir, "ldm_ema.ckpt"));
        using var legacy = WeightsFile.Open(Path.Combine(Dir, "ldm_legacy.ckpt"));
        Assert.Equal(zip.Tensors.Select(t => t.Name).Order(), legacy.Tensors.Select(t => t.Name).Order());
        float max = 0;
        foreach (var info in zip.Tensors.Where(t => t.IsFloat))
        {
            using var a = zip.ReadF32(info.Name);
            using var b = legacy.ReadF32(info.Name);
            max = Math.Max(max, a.ToArray().Zip(b.ToArray()).Select(p => Math.Abs(p.First - p.Second)).DefaultIfEmpty(0).Max());
        }
        Assert.True(max == 0, $"zip vs legacy: max abs diff {max}");
    }

    [Theory]
    [InlineData("os_system.ckpt", "os.system")]
    [InlineData("builtins_eval.ckpt", "builtins.eval")]
    [InlineData("subprocess_popen.pt", "subprocess.Popen")]
    [InlineData("missing_storage.ckpt", "no data/1 record")]
    [InlineData("storage_record_short.ckpt", "holds 64 bytes")]
    [InlineData("storage_too_small.ckpt", "needs 64 elements")]
    [InlineData("truncated.ckpt", "end-of-central-directory")]
    public void Open_BadFile_RefusedNamingTheProblem(string file, string fragment)
    {
        var e = Assert.Throws<InvalidInputException>(() => WeightsFile.Open(Path.Combine(Dir, "bad", file)).Dispose());
        Assert.Contains(fragment, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    // The Hugging Face cache keeps .pt/.bin files as links into blobs/: a link's own size is its target's name length.
    [Fact]
    public void Open_SymlinkToCheckpoint_ReadsTheTarget()
    {
        var dir = Directory.CreateTempSubdirectory("instaflow-ptlink-").FullName;
        try
        {
            var link = Path.Combine(dir, "unet.pt");
            File.CreateSymbolicLink(link, Path.Combine(Dir, "unet_state_dict.pt"));
            using var viaLink = WeightsFile.Open(link);
            using var direct = WeightsFile.Open(Path.Combine(Dir, "unet_state_dict.pt"));
            Assert.Equal(direct.Tensors.Select(t => t.Name), viaLink.Tensors.Select(t => t.Name));
            var name = direct.Tensors.First(t => t.IsFloat).Name;
            Assert.Equal(direct.ReadF32(name).ToArray(), viaLink.ReadF32(name).ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
