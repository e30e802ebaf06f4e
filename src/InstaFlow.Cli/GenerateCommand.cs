// `instaflow generate`: text to PNG with the InstaFlow rectified-flow pipeline, with progress on stderr and a
// one-line timing summary per stage.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Cli;

public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "diffusers model folder (InstaFlow-0.9B, 2-Rectified-Flow, SD 1.5 layout); default: the embedded model" };
        var promptOpt = new Option<string?>("--prompt", "-p") { Description = "the text prompt" };
        var promptArg = new Argument<string?>("prompt") { Description = "the text prompt (or use --prompt)", Arity = ArgumentArity.ZeroOrOne };
        var negative = new Option<string?>("--negative-prompt") { Description = "negative prompt for classifier-free guidance (default \"\")" };
        var steps = new Option<int>("--steps") { Description = "Euler steps (1 for InstaFlow)", DefaultValueFactory = _ => 1 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance scale; on when > 1", DefaultValueFactory = _ => 0f };
        var seed = new Option<ulong>("--seed") { Description = "seed of the PyTorch-compatible noise generator", DefaultValueFactory = _ => 0UL };
        var width = new Option<int?>("--width") { Description = "image width in pixels (multiple of 8)" };
        var height = new Option<int?>("--height") { Description = "image height in pixels (multiple of 8)" };
        var batch = new Option<int>("--batch") { Description = "number of images for the prompt", DefaultValueFactory = _ => 1 };
        var variant = new Option<string?>("--variant") { Description = "weights variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)" };
        var initLatents = new Option<string?>("--init-latents") { Description = "safetensors file with the initial noise [B,4,h,w] ('latents')" };
        var saveLatents = new Option<string?>("--save-latents") { Description = "write the final latents to this safetensors file" };
        var output = new Option<string>("--output", "-o") { Description = "output PNG path (with --batch > 1: NAME-0.png, NAME-1.png, ...)", DefaultValueFactory = _ => "output.png" };
        var threads = new Option<int?>("--threads") { Description = "worker threads (default: all cores)" };

        var cmd = new Command("generate", "Generate an image from a text prompt");
        foreach (var o in new Option[] { model, promptOpt, negative, steps, guidance, seed, width, height, batch, variant, initLatents, saveLatents, output, threads }) cmd.Options.Add(o);
        cmd.Arguments.Add(promptArg);
        cmd.SetAction(r =>
        {
            var prompt = r.GetValue(promptOpt) ?? r.GetValue(promptArg) ?? throw new UserException("no prompt: pass it as an argument or with --prompt");
            if (r.GetValue(promptOpt) != null && r.GetValue(promptArg) != null) throw new UserException("give the prompt once: either as an argument or with --prompt");
            int b = r.GetValue(batch);
            if (b < 1 || b > 64) throw new UserException($"--batch must be between 1 and 64, got {b}");
            foreach (var (name, v) in new[] { ("--width", r.GetValue(width)), ("--height", r.GetValue(height)) })
                if (v is int x && (x <= 0 || x % 8 != 0)) throw new UserException($"{name} {x} is not usable: sizes must be positive multiples of 8");
            if (r.GetValue(threads) is int th) Par.Threads = th;
            var dir = ModelLocator.Resolve(r.GetValue(model));
            var outPath = r.GetValue(output)!;
            var outDir = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
            if (!Directory.Exists(outDir)) throw new UserException($"output folder does not exist: {outDir}");

            var load = Stopwatch.StartNew();
            using var components = SdComponents.Load(dir, r.GetValue(variant));
            CliIO.Err.WriteLine($"loaded {components.Name} in {load.Elapsed.TotalSeconds:F2} s");
            var pipe = new RectifiedFlowPipeline(components);
            foreach (var w in pipe.TruncationWarnings(new[] { prompt, r.GetValue(negative) ?? "" })) CliIO.Err.WriteLine($"warning: {w}");
            pipe.Progress = (i, n) => CliIO.Err.Write($"\rstep {i + 1}/{n}");

            Tensor? init = null;
            if (r.GetValue(initLatents) is string lf) init = LatentsFile.Read(lf);
            var neg = r.GetValue(negative);
            var req = new GenerationRequest
            {
                Prompts = Enumerable.Repeat(prompt, b).ToArray(),
                NegativePrompts = neg == null ? null : Enumerable.Repeat(neg, b).ToArray(),
                Steps = r.GetValue(steps), Guidance = r.GetValue(guidance), Seed = r.GetValue(seed),
                Width = r.GetValue(width), Height = r.GetValue(height), InitLatents = init,
            };
            var res = pipe.Generate(req);
            init?.Dispose();
            CliIO.Err.WriteLine();
            CliIO.Err.WriteLine(string.Join(", ", res.Timings.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Stage} {t.Seconds:F3} s"))));

            var meta = new GenerationMetadata(prompt, neg, req.Steps, req.Guidance, req.Seed, res.Width, res.Height, components.Name);
            for (int i = 0; i < b; i++)
            {
                var path = b == 1 ? outPath : Path.Combine(outDir, $"{Path.GetFileNameWithoutExtension(outPath)}-{i}{Path.GetExtension(outPath)}");
                Png.Write(path, res.Width, res.Height, 3, res.ImagesHwc[i], meta.ToPngText());
                CliIO.Out.WriteLine(path);
            }
            if (r.GetValue(saveLatents) is string sl) LatentsFile.Write(sl, res.FinalLatents);
            res.FinalLatents.Dispose();
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
