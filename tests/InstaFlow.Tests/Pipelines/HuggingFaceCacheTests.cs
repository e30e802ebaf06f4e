// A model in the Hugging Face cache layout (snapshots/<rev>/ files are relative symlinks into blobs/) loads and
// generates the same image as the plain folder; a --variant no component has is refused.
using System.Security.Cryptography;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Pipelines;

public sealed class HuggingFaceCacheTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-hfcache-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Copies the folder into repo/blobs/&lt;sha256&gt; and links every file from repo/snapshots/&lt;rev&gt;/, as huggingface_hub does.</summary>
    private string BuildCacheSnapshot(string source)
    {
        string repo = Path.Combine(_dir, "models--test--tiny-sd15");
        string blobs = Directory.CreateDirectory(Path.Combine(repo, "blobs")).FullName;
        string snapshot = Directory.CreateDirectory(Path.Combine(repo, "snapshots", "0123456789abcdef")).FullName;
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(source, file);
            string hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
            string blob = Path.Combine(blobs, hash);
            if (!File.Exists(blob)) File.Copy(file, blob);
            string link = Path.Combine(snapshot, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
        return snapshot;
    }

    [Fact]
    public void Load_HuggingFaceCacheSnapshot_GeneratesTheSameImageAsThePlainFolder()
    {
        string snapshot = BuildCacheSnapshot(Tiny);
        Assert.NotNull(new FileInfo(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")).LinkTarget);

        byte[] Image(string dir)
        {
            using var model = SdComponents.Load(dir);
            var result = new RectifiedFlowPipeline(model).Generate(new GenerationRequest { Prompts = ["a red fox"], Seed = 7, Steps = 1 });
            result.FinalLatents.Dispose();
            return result.ImagesHwc[0];
        }
        Assert.Equal(Image(Tiny), Image(snapshot));
    }

    [Fact]
    public void Load_VariantNoComponentHas_IsRefusedNamingIt()
    {
        var e = Assert.Throws<InvalidInputException>(() => SdComponents.Load(Tiny, "fp61"));
        Assert.Contains("fp61", e.Message);
    }
}
