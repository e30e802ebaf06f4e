// `instaflow generate`: text to PNG with the InstaFlow rectified-flow pipeline, with progress on stderr and a
// one-line timing summary per stage.
using System.CommandLine;
using System.Diagnostics;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Cli;

public static class GenerateCommand
{
    public const long LowMemoryPoolBytes = 256L << 20;

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "diffusers model folder (InstaFlow-0.9B, 2-Rectified-Flow, SD 1.5 layout); default: the embedded model" };
        var steps = new Option<int>("--steps") { Description = "Euler steps (1 for InstaFlow)", DefaultValueFactory = _ => 1 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance scale; on when > 1", DefaultValueFactory = _ => 0f };
        var taesd = new Option<string?>("--taesd") { Description = "decode with this TAESD folder (diffusers AutoencoderTiny) instead of the VAE: much faster, slightly softer" };
        var lora = new Option<string[]>("--lora") { Description = "LoRA file(s) (kohya or diffusers safetensors) merged into the UNet and text encoder", AllowMultipleArgumentsPerToken = true };
        var loraScale = new Option<float>("--lora-scale") { Description = "strength of the LoRA(s), as diffusers' fuse_lora(lora_scale)", DefaultValueFactory = _ => 1f };
        var controlnet = new Option<string?>("--controlnet") { Description = "diffusers ControlNetModel folder (InstaFlow's ControlNet pipeline)" };
        var controlImage = new Option<string?>("--control-image") { Description = "control image (PNG; the output takes its size)" };
        var controlScale = new Option<float>("--control-scale") { Description = "ControlNet conditioning scale", DefaultValueFactory = _ => 1f };
        var lowMemory = new Option<bool>("--low-memory") { Description = $"keep at most {LowMemoryPoolBytes >> 20} MB of idle buffers for reuse: lower peak memory, slightly slower steps" };
        var io = new ImageOptions();

        var cmd = new Command("generate", "Generate an image from a text prompt");
        cmd.Options.Add(model);
        cmd.Options.Add(steps);
        cmd.Options.Add(guidance);
        cmd.Options.Add(taesd);
        cmd.Options.Add(lora);
        cmd.Options.Add(loraScale);
        cmd.Options.Add(controlnet);
        cmd.Options.Add(controlImage);
        cmd.Options.Add(controlScale);
        cmd.Options.Add(lowMemory);
        io.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var (prompt, outDir) = io.Validate(r);
            var dir = ModelLocator.Resolve(r.GetValue(model));
            if ((r.GetValue(controlnet) == null) != (r.GetValue(controlImage) == null))
                throw new UserException("--controlnet and --control-image go together: pass both or neither");

            var load = Stopwatch.StartNew();
            using var components = SdComponents.Load(dir, r.GetValue(io.Variant));
            new ModelAdditions { TaesdDir = r.GetValue(taesd), LoraFiles = r.GetValue(lora) ?? [], LoraScale = r.GetValue(loraScale) }
                .ApplyTo(components, CliIO.Err.WriteLine);
            CliIO.Err.WriteLine($"loaded {components.Description} in {load.Elapsed.TotalSeconds:F2} s");
            var pipe = new RectifiedFlowPipeline(components);
            ControlImage? control = null;
            if (r.GetValue(controlnet) is string cn)
            {
                pipe.ControlNet = Models.Unet.ControlNetModel.Load(cn).Model;
                var png = ImageFile.Read(r.GetValue(controlImage)!);
                control = new ControlImage(png.Pixels, png.Width, png.Height, r.GetValue(controlScale));
                components.Additions.Add(FormattableString.Invariant($"controlnet {Path.GetFileName(Path.TrimEndingDirectorySeparator(cn))} x{control.Scale:G4}"));
            }
            foreach (var w in pipe.TruncationWarnings(new[] { prompt, r.GetValue(io.Negative) ?? "" })) CliIO.Err.WriteLine($"warning: {w}");
            pipe.Progress = (i, n) => CliIO.Err.Write($"\rstep {i + 1}/{n}");
            // one image set per run: each network's memory is given back once it is done
            pipe.ReleaseWeightsAsUsed = true;
            long pooled = BufferPool.MaxPooledBytes;
            if (r.GetValue(lowMemory)) BufferPool.MaxPooledBytes = LowMemoryPoolBytes;

            var req = io.Request(r, prompt, r.GetValue(steps), r.GetValue(guidance)) with { Control = control };
            GenerationResult res;
            try { res = pipe.Generate(req); }
            finally { BufferPool.MaxPooledBytes = pooled; }
            req.InitLatents?.Dispose();
            var meta = new GenerationMetadata(prompt, r.GetValue(io.Negative), req.Steps, req.Guidance, req.Seed, res.Width, res.Height, components.Description);
            io.WriteResults(r, res, outDir, meta);
            return 0;
        });
        return cmd;
    }
}

/// <summary>Finds the model folder: an explicit --model, else the embedded default model shipped in the repo.</summary>
public static class ModelLocator
{
    public const string DefaultModelFolder = "models/twemoji-instaflow";

    public static string Resolve(string? model)
    {
        if (model != null) return model;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null)
        {
            var candidate = Path.Combine(dir.FullName, DefaultModelFolder);
            if (File.Exists(Path.Combine(candidate, "model_index.json"))) return candidate;
            dir = dir.Parent;
        }
        throw new UserException($"no --model given and the default model ({DefaultModelFolder}) was not found next to the program; pass --model DIR with a diffusers folder");
    }
}
