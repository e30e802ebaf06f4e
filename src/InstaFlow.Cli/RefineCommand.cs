// `instaflow refine`: SDXL-Refiner image-to-image (diffusers' StableDiffusionXLImg2ImgPipeline), the step InstaFlow's
// demo runs on its one-step images; also the refinement stage of `generate --refiner`.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Cli;

public static class RefineCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "SDXL-Refiner diffusers folder (text_encoder_2, tokenizer_2, unet, vae, scheduler)", Required = true };
        var image = new Option<string>("--image") { Description = $"the image to refine ({ImageFile.SupportedFormats}; sides multiples of 8)", Required = true };
        var prompt = new Option<string>("--prompt", "-p") { Description = "the text prompt", Required = true };
        var negative = new Option<string?>("--negative-prompt") { Description = "negative prompt (default: \"\" encoded)" };
        var strength = new Option<float>("--strength") { Description = "share of the schedule re-run: 0.3 keeps the composition and sharpens details", DefaultValueFactory = _ => 0.3f };
        var steps = new Option<int>("--steps") { Description = "Euler schedule length; int(steps * strength) of them run", DefaultValueFactory = _ => 50 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance scale, on when > 1", DefaultValueFactory = _ => 5f };
        var seed = new Option<ulong?>("--seed") { Description = "seed of the PyTorch CPU generator: first draw = the VAE sample, second = the added noise (default: random, printed)" };
        var initNoise = new Option<string?>("--init-noise") { Description = "safetensors file with F32 encode_noise and add_noise [1,4,H/8,W/8] (instead of --seed)" };
        var saveLatents = new Option<string?>("--save-latents") { Description = "write the final latents (before / scaling_factor) as 'latents' to this safetensors file" };
        var variant = new Option<string?>("--variant") { Description = "weights variant, e.g. fp16 (widened to F32 on load)" };
        var output = new Option<string>("--output", "-o") { Description = "output PNG path", DefaultValueFactory = _ => "refined.png" };

        var cmd = new Command("refine", "Refine an image with SDXL-Refiner (image-to-image), as InstaFlow's demo does");
        foreach (var o in new Option[] { model, image, prompt, negative, strength, steps, guidance, seed, initNoise, saveLatents, variant, output }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            if (r.GetValue(seed) != null && r.GetValue(initNoise) != null) throw new UserException("--seed and --init-noise are alternatives: pass one");
            var outDir = Path.GetDirectoryName(Path.GetFullPath(r.GetValue(output)!))!;
            if (!Directory.Exists(outDir)) throw new UserException($"output folder does not exist: {outDir}");
            var settings = new RefineSettings(r.GetValue(model)!, r.GetValue(strength), r.GetValue(steps), r.GetValue(guidance), r.GetValue(variant));
            settings.Check();
            var img = ImageFile.Read(r.GetValue(image)!);
            using var scope = TensorScope.Begin();
            Tensor? encodeNoise = null, addNoise = null;
            if (r.GetValue(initNoise) is string nf)
            {
                using var f = SafeTensors.Open(nf);
                foreach (var name in new[] { "encode_noise", "add_noise" })
                    if (!f.Contains(name)) throw new InvalidInputException($"{nf}: no tensor '{name}'; --init-noise needs F32 encode_noise and add_noise [1,4,H/8,W/8]");
                (encodeNoise, addNoise) = (f.ReadF32("encode_noise"), f.ReadF32("add_noise"));
            }
            ulong s = r.GetValue(seed) ?? SeedPolicy.NewSeed();
            if (r.GetValue(seed) == null && encodeNoise == null) CliIO.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {s}"));
            var req = new RefineRequest
            {
                ImageHwc = img.Pixels, Width = img.Width, Height = img.Height, Prompt = r.GetValue(prompt)!, NegativePrompt = r.GetValue(negative),
                Strength = settings.Strength, Steps = settings.Steps, Guidance = settings.Guidance, Seed = s, EncodeNoise = encodeNoise, AddNoise = addNoise,
            };
            var res = settings.Run(req);
            Write(r.GetValue(output)!, res, r.GetValue(saveLatents));
            return 0;
        });
        return cmd;
    }

    /// <summary>Prints the timings, writes the PNG with its parameters and the optional latents file.</summary>
    internal static void Write(string path, GenerationResult res, string? latentsPath)
    {
        CliIO.Err.WriteLine(string.Join(", ", res.Timings.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Stage} {t.Seconds:F3} s"))));
        Png.Write(path, res.Width, res.Height, 3, res.ImagesHwc[0], res.Metadata[0].ToPngText());
        CliIO.Out.WriteLine(path);
        if (latentsPath != null) LatentsFile.Write(latentsPath, res.FinalLatents);
        res.FinalLatents.Dispose();
    }
}

/// <summary>The refiner and its schedule, shared by `refine` and `generate --refiner`.</summary>
internal sealed record RefineSettings(string ModelDir, float Strength, int Steps, float Guidance, string? Variant)
{
    /// <summary>Option checks that need no model, so a typo fails before minutes of loading.</summary>
    public void Check()
    {
        if (!(Strength > 0 && Strength <= 1)) throw new UserException($"--strength must be in (0, 1], got {Strength}");
        if (Steps < 1 || Steps > 1000) throw new UserException($"--steps must be between 1 and 1000, got {Steps}");
        if (!(Guidance >= 0 && Guidance <= 100)) throw new UserException($"--guidance must be between 0 and 100, got {Guidance}");
        if (RefinerPipeline.StartStep(Steps, Strength) >= Steps)
            throw new UserException($"--strength {Strength.ToString(CultureInfo.InvariantCulture)} of {Steps} steps runs no step (int(steps * strength) = 0); raise --strength or --steps");
        if (!Directory.Exists(ModelDir)) throw new UserException($"refiner folder not found: {ModelDir}");
    }

    public GenerationResult Run(RefineRequest req)
    {
        var load = Stopwatch.StartNew();
        using var model = RefinerComponents.Load(ModelDir, Variant);
        CliIO.Err.WriteLine($"loaded refiner {model.Name} in {load.Elapsed.TotalSeconds:F2} s");
        var pipe = new RefinerPipeline(model) { ReleaseWeightsAsUsed = true };
        return ProgressDisplay.Run("refine", p =>
        {
            pipe.Progress = g => p.Report(new JobProgress(g.Step + 1, g.Steps));
            return pipe.Refine(req);
        });
    }
}

/// <summary>
/// `generate --refiner`: each one-step image goes through the refiner with the same prompt and seed, as the demo's
/// pipe(prompt, image=img); the one-step images are kept beside the refined ones as NAME-onestep.png.
/// </summary>
internal static class RefineChain
{
    public static GenerationResult Apply(RefineSettings settings, GenerationResult res, string outPath)
    {
        var onestep = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileNameWithoutExtension(outPath));
        var refined = new byte[res.ImagesHwc.Length][];
        var meta = new GenerationMetadata[refined.Length];
        var timings = res.Timings.ToList();
        var latents = new Tensor[refined.Length];
        using var scope = TensorScope.Begin();
        for (int i = 0; i < refined.Length; i++)
        {
            var m = res.Metadata[i];
            var path = refined.Length == 1 ? $"{onestep}-onestep.png" : $"{onestep}-{i}-onestep.png";
            Png.Write(path, res.Width, res.Height, 3, res.ImagesHwc[i], m.ToPngText());
            CliIO.Out.WriteLine(path);
            var r = settings.Run(new RefineRequest
            {
                ImageHwc = res.ImagesHwc[i], Width = res.Width, Height = res.Height, Prompt = m.Prompt, NegativePrompt = m.NegativePrompt,
                Strength = settings.Strength, Steps = settings.Steps, Guidance = settings.Guidance, Seed = m.Seed,
            });
            refined[i] = r.ImagesHwc[0];
            meta[i] = r.Metadata[0] with { Model = $"{m.Model} + {r.Metadata[0].Model}" };
            latents[i] = r.FinalLatents;
            timings.AddRange(r.Timings.Select(t => t with { Stage = "refine_" + t.Stage }));
        }
        res.FinalLatents.Dispose();
        var all = Ops.Concat(latents, 0).ClonePersistent();
        foreach (var l in latents) l.Dispose();
        return new GenerationResult { ImagesHwc = refined, Width = res.Width, Height = res.Height, FinalLatents = all, Timings = timings, Metadata = meta };
    }
}
