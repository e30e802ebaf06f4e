// The full-size SDXL-Refiner-1.0 (its real configs, random F16 weights) written as a diffusers folder, so that
// `instaflow refine` can be timed and measured at full size with no download.
using System.Diagnostics;
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using HalfConvert = InstaFlow.Tensors.Kernels.HalfConvert;

namespace InstaFlow.Pipelines;

public static class RefinerBench
{
    /// <summary>
    /// Writes stabilityai/stable-diffusion-xl-refiner-1.0's layout and configs (the values diffusers derives from
    /// Stability's sd_xl_refiner.yaml) with seeded random F16 weights: UNet ~2.3 B parameters, text_encoder_2 ~0.7 B.
    /// Peak memory is one component's F16 weights (the modules' float32 slots are never touched). Returns bytes and seconds.
    /// </summary>
    public static (long Bytes, double Seconds) WriteRandomFolder(string dir, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(dir);
        DiffusersWriter.WriteJson(Path.Combine(dir, "model_index.json"), new Dictionary<string, object?>
        {
            ["_class_name"] = "StableDiffusionXLImg2ImgPipeline", ["_diffusers_version"] = "0.21.4",
            ["force_zeros_for_empty_prompt"] = false, ["requires_aesthetics_score"] = true,
            ["scheduler"] = new[] { "diffusers", "EulerDiscreteScheduler" }, ["text_encoder"] = new object?[] { null, null },
            ["text_encoder_2"] = new[] { "transformers", "CLIPTextModelWithProjection" }, ["tokenizer"] = new object?[] { null, null },
            ["tokenizer_2"] = new[] { "transformers", "CLIPTokenizer" }, ["unet"] = new[] { "diffusers", "UNet2DConditionModel" },
            ["vae"] = new[] { "diffusers", "AutoencoderKL" },
        });
        WriteConfig(dir, "scheduler", "scheduler_config.json", new()
        {
            ["_class_name"] = "EulerDiscreteScheduler", ["beta_end"] = 0.012, ["beta_schedule"] = "scaled_linear", ["beta_start"] = 0.00085,
            ["clip_sample"] = false, ["interpolation_type"] = "linear", ["num_train_timesteps"] = 1000, ["prediction_type"] = "epsilon",
            ["sample_max_value"] = 1.0, ["set_alpha_to_one"] = false, ["skip_prk_steps"] = true, ["steps_offset"] = 1,
            ["timestep_spacing"] = "leading", ["trained_betas"] = null, ["use_karras_sigmas"] = false,
        });
        var tok = Path.Combine(dir, "tokenizer_2");
        ClipTokenizer.WriteStandardFiles(tok);
        // The refiner's tokenizer pads with "!" (id 0), not the end token.
        var special = new Dictionary<string, object?> { ["bos_token"] = "<|startoftext|>", ["eos_token"] = "<|endoftext|>", ["pad_token"] = "!", ["unk_token"] = "<|endoftext|>" };
        DiffusersWriter.WriteJson(Path.Combine(tok, "special_tokens_map.json"), special);
        DiffusersWriter.WriteJson(Path.Combine(tok, "tokenizer_config.json"), new Dictionary<string, object?>(special)
        {
            ["do_lower_case"] = true, ["model_max_length"] = 77, ["tokenizer_class"] = "CLIPTokenizer",
        });

        var textConfig = WriteConfig(dir, "text_encoder_2", "config.json", new()
        {
            ["architectures"] = new[] { "CLIPTextModelWithProjection" }, ["hidden_act"] = "gelu", ["hidden_size"] = 1280,
            ["intermediate_size"] = 5120, ["layer_norm_eps"] = 1e-5, ["max_position_embeddings"] = 77, ["model_type"] = "clip_text_model",
            ["num_attention_heads"] = 20, ["num_hidden_layers"] = 32, ["projection_dim"] = 1280, ["vocab_size"] = 49408,
            ["bos_token_id"] = 0, ["eos_token_id"] = 2, ["pad_token_id"] = 1,
        });
        WriteRandom(ClipTextModelWithProjection.FromConfig(textConfig), Path.Combine(dir, "text_encoder_2", "model.safetensors"), 1, log);

        var unetConfig = WriteConfig(dir, "unet", "config.json", new()
        {
            ["_class_name"] = "UNet2DConditionModel", ["act_fn"] = "silu", ["addition_embed_type"] = "text_time",
            ["addition_embed_type_num_heads"] = 64, ["addition_time_embed_dim"] = 256, ["attention_head_dim"] = new[] { 6, 12, 24, 24 },
            ["block_out_channels"] = new[] { 384, 768, 1536, 1536 }, ["center_input_sample"] = false, ["cross_attention_dim"] = 1280,
            ["down_block_types"] = new[] { "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D" },
            ["downsample_padding"] = 1, ["flip_sin_to_cos"] = true, ["freq_shift"] = 0, ["in_channels"] = 4, ["layers_per_block"] = 2,
            ["mid_block_scale_factor"] = 1, ["norm_eps"] = 1e-5, ["norm_num_groups"] = 32, ["out_channels"] = 4,
            ["projection_class_embeddings_input_dim"] = 2560, ["sample_size"] = 128, ["transformer_layers_per_block"] = 4,
            ["up_block_types"] = new[] { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D" },
            ["upcast_attention"] = null, ["use_linear_projection"] = true,
        });
        WriteRandom(new UNet2DConditionModel(UNet2DConditionConfig.Load(unetConfig)), Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"), 2, log);

        var vaeConfig = WriteConfig(dir, "vae", "config.json", new()
        {
            ["_class_name"] = "AutoencoderKL", ["act_fn"] = "silu", ["block_out_channels"] = new[] { 128, 256, 512, 512 },
            ["down_block_types"] = Enumerable.Repeat("DownEncoderBlock2D", 4).ToArray(), ["force_upcast"] = true, ["in_channels"] = 3,
            ["latent_channels"] = 4, ["layers_per_block"] = 2, ["norm_num_groups"] = 32, ["out_channels"] = 3, ["sample_size"] = 1024,
            ["scaling_factor"] = 0.13025, ["up_block_types"] = Enumerable.Repeat("UpDecoderBlock2D", 4).ToArray(),
        });
        WriteRandom(new AutoencoderKL(AutoencoderKLConfig.Load(vaeConfig)), Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), 3, log);
        long bytes = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return (bytes, sw.Elapsed.TotalSeconds);
    }

    private static string WriteConfig(string dir, string component, string name, Dictionary<string, object?> values)
    {
        Directory.CreateDirectory(Path.Combine(dir, component));
        var path = Path.Combine(dir, component, name);
        DiffusersWriter.WriteJson(path, values);
        return path;
    }

    /// <summary>
    /// PyTorch's default init, drawn straight into F16 tensors: linear and conv weights and biases uniform in
    /// +-1/sqrt(fan_in), norms 1 and 0, embeddings uniform +-0.02. The module's own float32 slots stay untouched.
    /// </summary>
    private static unsafe void WriteRandom(Module module, string path, ulong seed, Action<string>? log)
    {
        var bounds = new Dictionary<string, (float Bound, float Fill)>(StringComparer.Ordinal);
        foreach (var (prefix, m) in module.NamedModules())
        {
            string p = prefix.Length == 0 ? "" : prefix + ".";
            switch (m)
            {
                case Linear l: bounds[p + "weight"] = bounds[p + "bias"] = (1f / MathF.Sqrt(l.InFeatures), 0); break;
                case Conv2d c: bounds[p + "weight"] = bounds[p + "bias"] = (1f / MathF.Sqrt(c.InChannels * c.Kernel * c.Kernel), 0); break;
                case GroupNorm or LayerNorm: bounds[p + "weight"] = (0, 1); bounds[p + "bias"] = (0, 0); break;
            }
        }
        var tensors = new List<(string, Tensor)>();
        try
        {
            ulong state = seed * 0x9E3779B97F4A7C15UL + 1;
            var chunk = new float[1 << 16];
            foreach (var (name, p) in module.NamedParameters())
            {
                var (bound, fill) = bounds.GetValueOrDefault(name, (0.02f, 0f));
                var t = Tensor.EmptyHalfPersistent(TensorDType.F16, p.Shape);
                tensors.Add((name, t));
                for (long off = 0; off < t.Numel; off += chunk.Length)
                {
                    int n = (int)Math.Min(chunk.Length, t.Numel - off);
                    for (int i = 0; i < n; i++)
                    {
                        // xorshift64*: fast, seeded, plenty for timing weights.
                        state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
                        float u = ((state * 0x2545F4914F6CDD1DUL) >> 40) * (1f / (1 << 24));
                        chunk[i] = bound > 0 ? (2 * u - 1) * bound : fill;
                    }
                    fixed (float* c = chunk) HalfConvert.F32ToF16(c, t.HalfData + off, n);
                }
            }
            SafeTensors.Save(path, tensors, SafeTensorDType.F16);
            log?.Invoke($"{path}: {module.ParameterCount / 1e6:F0}M parameters, {new FileInfo(path).Length / 1e9:F2} GB");
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
            foreach (var p in module.Parameters()) p.Value.Dispose();
        }
    }
}
