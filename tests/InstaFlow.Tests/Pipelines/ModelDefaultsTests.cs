// Per-model sampling defaults: model_index.json's "_instaflow_defaults" (our trainers write it), a folder named like
// 2-Rectified-Flow, or one step without guidance; a malformed entry is an error naming the file and key.
using System.Text.Json.Nodes;
using InstaFlow.Models;
using InstaFlow.Pipelines;

namespace InstaFlow.Tests.Pipelines;

public class ModelDefaultsTests
{
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    /// <summary>A folder whose model_index.json is the tiny model's, edited; the components are linked, not copied.</summary>
    private static string FolderWith(string name, Action<JsonObject> edit)
    {
        var dir = Path.Combine(Directory.CreateTempSubdirectory("instaflow-defaults-").FullName, name);
        Directory.CreateDirectory(dir);
        foreach (var sub in Directory.GetDirectories(Tiny)) Directory.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(sub)), sub);
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(Tiny, "model_index.json")))!.AsObject();
        edit(index);
        File.WriteAllText(Path.Combine(dir, "model_index.json"), index.ToJsonString());
        return dir;
    }

    [Fact]
    public void Defaults_FromModelIndex_TwoRfName_OrOneStep()
    {
        var written = FolderWith("mine", j => j["_instaflow_defaults"] = new JsonObject { ["steps"] = 4, ["guidance"] = 1.5 });
        var twoRf = FolderWith("models--XCLiu--2_rectified_flow_from_sd_1_5", _ => { });
        try
        {
            Assert.Equal(new ModelDefaults(4, 1.5f, "model_index.json"), ModelDefaults.For(DiffusersFolder.Open(written)));
            Assert.Equal((25, 1.5f), (ModelDefaults.For(DiffusersFolder.Open(twoRf)).Steps, ModelDefaults.For(DiffusersFolder.Open(twoRf)).Guidance));
            Assert.Equal(ModelDefaults.OneStep, ModelDefaults.For(DiffusersFolder.Open(Tiny)));
            using var m = SdComponents.Load(written);
            Assert.Equal(4, m.Defaults.Steps);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(written)!, true);
            Directory.Delete(Path.GetDirectoryName(twoRf)!, true);
        }
    }

    [Theory]
    [InlineData("{\"steps\": 0, \"guidance\": 1}", "_instaflow_defaults.steps")]
    [InlineData("{\"steps\": 2, \"guidance\": \"x\"}", "_instaflow_defaults.guidance")]
    [InlineData("[1, 2]", "_instaflow_defaults must be an object")]
    public void Defaults_Malformed_ErrorNamesFileAndKey(string json, string fragment)
    {
        var dir = FolderWith("bad", j => j["_instaflow_defaults"] = JsonNode.Parse(json));
        try
        {
            var e = Assert.Throws<InvalidInputException>(() => DiffusersFolder.Open(dir));
            Assert.Contains("model_index.json", e.Message);
            Assert.Contains(fragment, e.Message);
        }
        finally { Directory.Delete(Path.GetDirectoryName(dir)!, true); }
    }
}
