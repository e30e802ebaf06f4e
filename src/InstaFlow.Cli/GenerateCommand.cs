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
        var model = new ModelOptions();
        var merge = new MergeOptions();
        var steps = new Option<int?>("--steps") { Description = "Euler steps (default: the model's, 1 for InstaFlow)" };
        var guidance = new Option<float?>("--guidance") { Description = "classifier-free guidance scale, on when > 1 (default: the model's, 0 for InstaFlow)" };
        var taesd = new Option<string?>("--taesd") { Description = "decode with this TAESD folder (diffusers AutoencoderTiny) instead of the VAE: much faster, slightly softer" };
        var lora = new Option<string[]>("--lora") { Description = "LoRA file (kohya or diffusers safetensors) merged into the UNet and text encoder; repeat --lora for more" };
        var loraScale = new Option<float>("--lora-scale") { Description = "strength of the LoRA(s), as diffusers' fuse_lora(lora_scale)", DefaultValueFactory = _ => 1f };
        var controlnet = new Option<string?>("--controlnet") { Description = "diffusers ControlNetModel folder (InstaFlow's ControlNet pipeline)" };
        var controlImage = new Option<string?>("--control-image") { Description = "control image (the output takes its size)" };
        var controlScale = new Option<float>("--control-scale") { Description = "ControlNet conditioning scale", DefaultValueFactory = _ => 1f };
        var checkWeights = new Option<bool>("--check-weights") { Description = "refuse weights holding any NaN/Inf value (a full scan of every tensor after loading)" };
        var lowMemory = new Option<bool>("--low-memory") { Description = $"keep at most {LowMemoryPoolBytes >> 20} MB of idle buffers for reuse: lower peak memory, slightly slower steps" };
        var refiner = new Option<string?>("--refiner") { Description = "SDXL-Refiner folder: refine each image as InstaFlow's demo (same prompt and seed); the one-step image is kept as NAME-onestep.png" };
        var refineStrength = new Option<float>("--refine-strength") { Description = "refiner strength", DefaultValueFactory = _ => 0.3f };
        var refineSteps = new Option<int>("--refine-steps") { Description = "refiner Euler schedule length (int(steps * strength) run)", DefaultValueFactory = _ => 50 };
        var refineGuidance = new Option<float>("--refine-guidance") { Description = "refiner guidance scale", DefaultValueFactory = _ => 5f };
        var initImage = new Option<string?>("--init-image") { Description = "image-to-image: start the flow from this image's encoding (the output takes its size)" };
        var strength = new Option<float>("--strength") { Description = "with --init-image: 1 = ignore the image (text-to-image), 0 = return it; the Euler steps cover [1 - s, 1]", DefaultValueFactory = _ => 0.5f };
        var interpolate = new Option<string[]>("--interpolate") { Description = "two prompts: write --frames frames between them (slerp of noise, lerp of text embeddings) as NAME-000.png ... and NAME.gif", Arity = new ArgumentArity(2, 2), AllowMultipleArgumentsPerToken = true };
        var frames = new Option<int>("--frames") { Description = "frames of --interpolate, both ends included", DefaultValueFactory = _ => 8 };
        var prepack = new Option<bool>("--prepack") { Description = "keep each weight packed after its first use: faster when the networks run several times (steps, images, frames), ~4 GB more memory for SD-1.5" };
        var io = new ImageOptions();

        var cmd = new Command("generate", "Generate an image from a text prompt");
        model.AddTo(cmd);
        merge.AddTo(cmd);
        cmd.Options.Add(steps);
        cmd.Options.Add(guidance);
        cmd.Options.Add(taesd);
        cmd.Options.Add(lora);
        cmd.Options.Add(loraScale);
        cmd.Options.Add(controlnet);
        cmd.Options.Add(controlImage);
        cmd.Options.Add(controlScale);
        cmd.Options.Add(lowMemory);
        cmd.Options.Add(prepack);
        foreach (var o in new Option[] { refiner, refineStrength, refineSteps, refineGuidance, initImage, strength, interpolate, frames }) cmd.Options.Add(o);
        cmd.Options.Add(checkWeights);
        io.AddTo(cmd);
        cmd.SetAction(r =>
        {
            if (r.GetValue(interpolate) is { Length: > 0 } pair)
            {
                if (r.GetValue(io.PromptOpt) != null || r.GetValue(io.PromptArg) != null) throw new UserException("--interpolate takes the two prompts itself: drop the other prompt");
                using var m = SdComponents.Open(model.Source(r, r.GetValue(io.Variant)));
                if (r.GetValue(prepack)) m.PackWeightsOnce();
                return InterpolateRun.Run(r, io, pair, r.GetValue(frames), m, r.GetValue(steps), r.GetValue(guidance));
            }
            var (prompt, outDir) = io.Validate(r);
            if (r.GetValue(steps) is int n && (n < 1 || n > 1000)) throw new UserException($"--steps must be between 1 and 1000, got {n}");
            if (r.GetValue(guidance) is float g && !(g >= 0 && g <= 100)) throw new UserException($"--guidance must be between 0 and 100, got {g}");
            if (!float.IsFinite(r.GetValue(loraScale))) throw new UserException($"--lora-scale must be a finite number, got {r.GetValue(loraScale)}");
            if (!float.IsFinite(r.GetValue(controlScale))) throw new UserException($"--control-scale must be a finite number, got {r.GetValue(controlScale)}");
            if ((r.GetValue(controlnet) == null) != (r.GetValue(controlImage) == null))
                throw new UserException("--controlnet and --control-image go together: pass both or neither");
            var refine = r.GetValue(refiner) is string rd ? new RefineSettings(rd, r.GetValue(refineStrength), r.GetValue(refineSteps), r.GetValue(refineGuidance), r.GetValue(io.Variant)) : null;
            refine?.Check();
            if (!(r.GetValue(strength) is >= 0f and <= 1f)) throw new UserException($"--strength must be between 0 and 1, got {r.GetValue(strength)}");
            if (r.GetValue(initImage) != null && r.GetValue(controlImage) != null) throw new UserException("--init-image and --control-image cannot be combined");
            var source = model.Source(r, r.GetValue(io.Variant));

            var load = Stopwatch.StartNew();
            using var components = SdComponents.Open(source);
            // The full check first: its error covers what the all-NaN warnings would say.
            if (r.GetValue(checkWeights)) components.RequireFiniteWeights();
            foreach (var w in components.Warnings) CliIO.Err.WriteLine($"warning: {w}");
            merge.ApplyTo(new ModelAdditions
            {
                TaesdDir = r.GetValue(taesd), LoraFiles = r.GetValue(lora) ?? [], LoraScale = r.GetValue(loraScale), ControlNetDir = r.GetValue(controlnet),
            }, r, source.ConfigDir).ApplyTo(components, CliIO.Err.WriteLine);
            CliIO.Err.WriteLine($"loaded {components.Description} in {load.Elapsed.TotalSeconds:F2} s");
            if (r.GetValue(prepack)) components.PackWeightsOnce();
            ControlImage? control = null;
            if (r.GetValue(controlImage) is string ci)
            {
                var png = ImageFile.Read(ci);
                control = new ControlImage(png.Pixels, png.Width, png.Height, r.GetValue(controlScale));
            }
            var pipe = new RectifiedFlowPipeline(components)
            {
                // one image set per run: each network's memory is given back once it is done
                ReleaseWeightsAsUsed = true,
                MaxPooledBytes = r.GetValue(lowMemory) ? LowMemoryPoolBytes : null,
            };
            foreach (var w in pipe.TruncationWarnings(new[] { prompt, r.GetValue(io.Negative) ?? "" })) CliIO.Err.WriteLine($"warning: {w}");

            var defaults = components.Defaults;
            InitImage? init = null;
            if (r.GetValue(initImage) is string ii)
            {
                var img = ImageFile.Read(ii);
                init = new InitImage(img.Pixels, img.Width, img.Height);
            }
            var req = io.Request(r, prompt, r.GetValue(steps) ?? defaults.Steps, r.GetValue(guidance) ?? defaults.Guidance) with { Control = control, InitImage = init, Strength = r.GetValue(strength) };
            var res = ProgressDisplay.Run("generate", p =>
            {
                // steps of all images as one count, so the bar's ETA covers the whole batch
                pipe.Progress = g => p.Report(new JobProgress((long)g.Image * g.Steps + g.Step + 1, (long)g.Images * g.Steps));
                return pipe.GenerateImages(req, r.GetValue(io.Batch));
            });
            req.InitLatents?.Dispose();
            if (refine != null) res = RefineChain.Apply(refine, res, r.GetValue(io.Output)!);
            io.WriteResults(r, res, outDir);
            return 0;
        });
        return cmd;
    }
}
