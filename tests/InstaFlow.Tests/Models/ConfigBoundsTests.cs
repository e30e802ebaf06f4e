// Config values that would exhaust memory, divide by zero or index out of range are refused when the config is
// read, before any allocation, with the file and the key named (issue 12).
using System.Text.Json.Nodes;
using InstaFlow.Flow.Schedulers;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;

namespace InstaFlow.Tests.Models;

public sealed class ConfigBoundsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-configbounds-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The tiny model's config of <paramref name="component"/> with one key replaced by raw JSON, loaded by the component's reader.</summary>
    internal static void LoadWith(string dir, string component, string key, string json)
    {
        // The fixture's scheduler config holds Python's bare -Infinity, which JsonNode cannot read: use a minimal one.
        var node = component == "scheduler"
            ? new JsonObject { ["_class_name"] = "EulerDiscreteScheduler" }
            : JsonNode.Parse(File.ReadAllText(Path.Combine(Tiny, component, "config.json")))!.AsObject();
        // A placeholder replaced by the raw text, so values JSON cannot hold (NaN, as Python writes it) go in as-is.
        node[key] = "@RAW@";
        var path = Path.Combine(dir, $"{component}-{key}.json");
        File.WriteAllText(path, node.ToJsonString().Replace("\"@RAW@\"", json));
        switch (component)
        {
            case "unet": UNet2DConditionConfig.Load(path); break;
            case "vae": AutoencoderKLConfig.Load(path); break;
            case "text_encoder": ClipTextConfig.Load(path); break;
            default: SchedulerConfig.Load(path); break;
        }
    }

    [Theory]
    [InlineData("unet", "layers_per_block", "1000000000")]
    [InlineData("unet", "layers_per_block", "0")]
    [InlineData("unet", "block_out_channels", "[]")]
    [InlineData("unet", "block_out_channels", "[32, 2147483647]")]
    [InlineData("unet", "attention_head_dim", "0")]
    [InlineData("unet", "attention_head_dim", "[0, 0]")]
    [InlineData("unet", "sample_size", "100000")]
    [InlineData("unet", "cross_attention_dim", "-5")]
    [InlineData("unet", "layers_per_block", "1e12")]
    [InlineData("vae", "scaling_factor", "0")]
    [InlineData("vae", "scaling_factor", "-0.18")]
    [InlineData("vae", "scaling_factor", "NaN")]
    [InlineData("vae", "layers_per_block", "1000000000")]
    [InlineData("vae", "block_out_channels", "[]")]
    [InlineData("text_encoder", "num_hidden_layers", "1000000000")]
    [InlineData("text_encoder", "num_attention_heads", "0")]
    [InlineData("text_encoder", "vocab_size", "2147483647")]
    [InlineData("text_encoder", "max_position_embeddings", "0")]
    [InlineData("scheduler", "beta_start", "-0.1")]
    [InlineData("scheduler", "beta_end", "-0.012")]
    [InlineData("scheduler", "num_train_timesteps", "0")]
    public void Load_OutOfRangeValue_InvalidInputNamingFileAndKey(string component, string key, string json)
    {
        var e = Assert.Throws<InvalidInputException>(() => LoadWith(_dir, component, key, json));
        Assert.Contains($"{component}-{key}.json", e.Message);
        Assert.Contains($"'{key}'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("unet", "layers_per_block", "3")]
    [InlineData("vae", "scaling_factor", "0.13025")]
    [InlineData("scheduler", "beta_end", "0.02")]
    public void Load_SaneValue_Loads(string component, string key, string json) => LoadWith(_dir, component, key, json);
}
