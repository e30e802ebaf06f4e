// Writes diffusers pipeline folders (model_index.json, one config.json and safetensors file per component, the CLIP
// tokenizer files) that SdComponents.Load and `instaflow generate --model` read back; every file via temp + rename.
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;

namespace InstaFlow.Models;

public static class DiffusersWriter
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void WriteJson(string path, object value)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeFile.WriteAllText(path, JsonSerializer.Serialize(value, Indented) + "\n");
    }

    public static void WriteWeights(string path, Module module, SafeTensorDType dtype = SafeTensorDType.F16)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeTensors.Save(path, module.StateDict(), dtype);
    }

    public static void WriteVae(string dir, AutoencoderKL vae, SafeTensorDType dtype = SafeTensorDType.F16)
    {
        var c = vae.Config;
        int levels = c.BlockOutChannels.Length;
        WriteJson(Path.Combine(dir, "config.json"), new Dictionary<string, object>
        {
            ["_class_name"] = "AutoencoderKL", ["_diffusers_version"] = "0.21.4", ["act_fn"] = "silu",
            ["block_out_channels"] = c.BlockOutChannels,
            ["down_block_types"] = Enumerable.Repeat("DownEncoderBlock2D", levels).ToArray(),
            ["up_block_types"] = Enumerable.Repeat("UpDecoderBlock2D", levels).ToArray(),
            ["in_channels"] = c.InChannels, ["out_channels"] = c.OutChannels, ["latent_channels"] = c.LatentChannels,
            ["layers_per_block"] = c.LayersPerBlock, ["norm_num_groups"] = c.NormNumGroups,
            ["sample_size"] = c.SampleSize, ["scaling_factor"] = c.ScalingFactor,
        });
        WriteWeights(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), vae, dtype);
    }

    public static void WriteUnet(string dir, UNet2DConditionModel unet, SafeTensorDType dtype = SafeTensorDType.F16)
    {
        var c = unet.Config;
        WriteJson(Path.Combine(dir, "config.json"), new Dictionary<string, object>
        {
            ["_class_name"] = "UNet2DConditionModel", ["_diffusers_version"] = "0.21.4", ["act_fn"] = "silu",
            ["attention_head_dim"] = c.AttentionHeads, ["block_out_channels"] = c.BlockOutChannels,
            ["cross_attention_dim"] = c.CrossAttentionDim, ["down_block_types"] = c.DownBlockTypes, ["up_block_types"] = c.UpBlockTypes,
            ["mid_block_type"] = c.MidBlockType, ["downsample_padding"] = c.DownsamplePadding, ["flip_sin_to_cos"] = c.FlipSinToCos,
            ["freq_shift"] = c.FreqShift, ["in_channels"] = c.InChannels, ["out_channels"] = c.OutChannels,
            ["layers_per_block"] = c.LayersPerBlock, ["mid_block_scale_factor"] = c.MidBlockScaleFactor,
            ["norm_eps"] = c.NormEps, ["norm_num_groups"] = c.NormNumGroups, ["sample_size"] = c.SampleSize,
            ["transformer_layers_per_block"] = c.TransformerLayersPerBlock, ["use_linear_projection"] = c.UseLinearProjection,
        });
        WriteWeights(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), unet, dtype);
    }

    public static void WriteTextEncoder(string dir, ClipTextModel text, SafeTensorDType dtype = SafeTensorDType.F16)
    {
        var c = text.Config;
        WriteJson(Path.Combine(dir, "config.json"), new Dictionary<string, object>
        {
            ["architectures"] = new[] { "CLIPTextModel" }, ["model_type"] = "clip_text_model",
            ["bos_token_id"] = 0, ["eos_token_id"] = c.EosTokenId, ["pad_token_id"] = 1, ["hidden_act"] = c.HiddenAct,
            ["hidden_size"] = c.HiddenSize, ["intermediate_size"] = c.IntermediateSize, ["layer_norm_eps"] = c.LayerNormEps,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings, ["num_attention_heads"] = c.NumAttentionHeads,
            ["num_hidden_layers"] = c.NumHiddenLayers, ["vocab_size"] = c.VocabSize, ["torch_dtype"] = "float32",
        });
        WriteWeights(Path.Combine(dir, "model.safetensors"), text, dtype);
    }

    /// <summary>Copies the tokenizer files (vocab.json, merges.txt and the JSON configs) from a tokenizer folder.</summary>
    public static void CopyTokenizer(string fromDir, string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var name in new[] { "vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json" })
        {
            var src = Path.Combine(fromDir, name);
            if (File.Exists(src)) SafeFile.Copy(src, Path.Combine(dir, name));
            else if (name is "vocab.json" or "merges.txt") throw new FileNotFoundException($"{fromDir}: tokenizer file {name} is missing", src);
        }
    }

    /// <summary>
    /// A complete text-to-image folder: model_index.json (written last, so a folder that has it is whole). defaults, when
    /// given, are recorded as "_instaflow_defaults" (diffusers ignores keys that start with "_"), so generate and serve
    /// sample the model as it is meant to be.
    /// </summary>
    public static void WritePipeline(string dir, ClipTextModel text, UNet2DConditionModel unet, AutoencoderKL vae, string tokenizerDir,
        SafeTensorDType dtype = SafeTensorDType.F16, (int Steps, float Guidance)? defaults = null)
    {
        WriteTextEncoder(Path.Combine(dir, "text_encoder"), text, dtype);
        WriteUnet(Path.Combine(dir, "unet"), unet, dtype);
        WriteVae(Path.Combine(dir, "vae"), vae, dtype);
        CopyTokenizer(tokenizerDir, Path.Combine(dir, "tokenizer"));
        var index = new Dictionary<string, object?>
        {
            ["_class_name"] = "StableDiffusionPipeline", ["_diffusers_version"] = "0.21.4",
            ["text_encoder"] = new[] { "transformers", "CLIPTextModel" }, ["tokenizer"] = new[] { "transformers", "CLIPTokenizer" },
            ["unet"] = new[] { "diffusers", "UNet2DConditionModel" }, ["vae"] = new[] { "diffusers", "AutoencoderKL" },
            ["scheduler"] = new object?[] { null, null }, ["safety_checker"] = new object?[] { null, null },
            ["feature_extractor"] = new object?[] { null, null }, ["requires_safety_checker"] = false,
        };
        if (defaults is var (steps, guidance)) index["_instaflow_defaults"] = new Dictionary<string, object> { ["steps"] = steps, ["guidance"] = guidance };
        WriteJson(Path.Combine(dir, "model_index.json"), index);
    }

    /// <summary>Copies every component of srcDir except the UNet weights into dstDir, then saves unet's weights (F32).</summary>
    public static void WriteWithNewUnet(string srcDir, string dstDir, Module unet, SafeTensorDType dtype = SafeTensorDType.F32)
    {
        var src = DiffusersFolder.Open(srcDir);
        Directory.CreateDirectory(dstDir);
        CopyAtomic(Path.Combine(src.Root, "model_index.json"), Path.Combine(dstDir, "model_index.json"));
        foreach (var comp in src.Components.Keys.Append("scheduler").Distinct())
        {
            var from = Path.Combine(src.Root, comp);
            if (!Directory.Exists(from)) continue;
            var to = Path.Combine(dstDir, comp);
            Directory.CreateDirectory(to);
            foreach (var f in Directory.GetFiles(from))
            {
                var name = Path.GetFileName(f);
                // The new UNet replaces every weights file of the teacher's (variants included).
                if (comp == "unet" && name.EndsWith(".safetensors", StringComparison.Ordinal)) continue;
                CopyAtomic(f, Path.Combine(to, name));
            }
        }
        SafeTensors.Save(Path.Combine(dstDir, "unet", "diffusion_pytorch_model.safetensors"), unet.NamedParameters().Select(p => (p.Name, p.Param.Value)), dtype);
    }

    private static void CopyAtomic(string from, string to) => SafeFile.Copy(from, to);
}
