// LdmWriter is LdmKeys' inverse: the fixture's LDM single file (written by the real torch/diffusers stack), loaded and
// written again, has exactly the original's tensor names and shapes and loads to identical weights.
using InstaFlow.IO;
using InstaFlow.Models.Ldm;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Models;

public class LdmWriterTests
{
    private static string Dir => Path.Combine(TestUtil.Fixtures, "single_file");

    [Fact]
    public void Write_FixtureSingleFile_SameNamesShapesAndWeights()
    {
        var source = new ModelSource(Path.Combine(Dir, "ldm.safetensors")) { ConfigDir = Path.Combine(Dir, "mini-sd15") };
        var outPath = Path.Combine(Path.GetTempPath(), $"instaflow-ldm-{Guid.NewGuid():N}.safetensors");
        try
        {
            using var model = SdComponents.Open(source);
            LdmWriter.Write(outPath, model.TextEncoder, model.Unet, model.Vae);
            using (var original = SafeTensors.Open(source.Path))
            using (var written = SafeTensors.Open(outPath))
            {
                // the model's parameters are all of the file's tensors but bookkeeping ones (position_ids and the like)
                var expected = original.Tensors.Where(t => !t.Name.EndsWith("position_ids", StringComparison.Ordinal)).ToDictionary(t => t.Name, t => t.Shape);
                var actual = written.Tensors.ToDictionary(t => t.Name, t => t.Shape);
                var missing = expected.Keys.Except(actual.Keys).Take(5).ToArray();
                var extra = actual.Keys.Except(expected.Keys).Take(5).ToArray();
                Assert.True(missing.Length == 0 && extra.Length == 0, $"missing [{string.Join(", ", missing)}], extra [{string.Join(", ", extra)}]");
                foreach (var (name, shape) in expected) Assert.True(shape.SequenceEqual(actual[name]), $"{name}: {string.Join("x", shape)} vs {string.Join("x", actual[name])}");
            }
            using var again = SdComponents.Open(source with { Path = outPath });
            Assert.Equal(model.WeightsSha256(), again.WeightsSha256());
        }
        finally { File.Delete(outPath); }
    }
}
