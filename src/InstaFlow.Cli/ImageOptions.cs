// Options and output handling shared by the text-to-image commands (generate, sample): prompt, negative prompt,
// seed, size, batch, latents in/out, PNG writing with parameters, and the timing line.
using System.CommandLine;
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Cli;

internal sealed class ImageOptions
{
    public readonly Option<string?> PromptOpt = new("--prompt", "-p") { Description = "the text prompt" };
    public readonly Argument<string?> PromptArg = new("prompt") { Description = "the text prompt (or use --prompt)", Arity = ArgumentArity.ZeroOrOne };
    public readonly Option<string?> Negative = new("--negative-prompt") { Description = "negative prompt for classifier-free guidance (default \"\")" };
    public readonly Option<ulong?> Seed = new("--seed") { Description = "seed of the PyTorch-compatible noise generator; image i of a batch uses seed + i (default: a random seed, printed and stored in the PNG)" };
    public readonly Option<int?> Width = new("--width") { Description = "image width in pixels (multiple of 8)" };
    public readonly Option<int?> Height = new("--height") { Description = "image height in pixels (multiple of 8)" };
    public readonly Option<int> Batch = new("--batch") { Description = "number of images for the prompt", DefaultValueFactory = _ => 1 };
    public readonly Option<string?> Variant = new("--variant") { Description = "weights variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)" };
    public readonly Option<string?> InitLatents = new("--init-latents") { Description = "safetensors file with the initial noise [B,4,h,w] ('latents')" };
    public readonly Option<string?> SaveLatents = new("--save-latents") { Description = "write the final latents to this safetensors file" };
    public readonly Option<string> Output = new("--output", "-o") { Description = "output PNG path (with --batch > 1: NAME-0.png, NAME-1.png, ...)", DefaultValueFactory = _ => "output.png" };
    public readonly Option<int?> Threads = new("--threads") { Description = "worker threads (default: all cores)" };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { PromptOpt, Negative, Seed, Width, Height, Batch, Variant, InitLatents, SaveLatents, Output, Threads }) cmd.Options.Add(o);
        cmd.Arguments.Add(PromptArg);
    }

    /// <summary>Image sizes are checked before any model loads (the model's own factor is checked by the library).</summary>
    public static void CheckSize(int? width, int? height)
    {
        foreach (var (name, v) in new[] { ("--width", width), ("--height", height) })
            if (v is int x)
            {
                try { ImageSize.Check(name, x); }
                catch (ArgumentException e) { throw new UserException(e.Message); }
            }
    }

    /// <summary>Checks the options that need no model and returns the prompt and the output folder.</summary>
    public (string Prompt, string OutDir) Validate(ParseResult r)
    {
        var prompt = r.GetValue(PromptOpt) ?? r.GetValue(PromptArg) ?? throw new UserException("no prompt: pass it as an argument or with --prompt");
        if (r.GetValue(PromptOpt) != null && r.GetValue(PromptArg) != null) throw new UserException("give the prompt once: either as an argument or with --prompt");
        int b = r.GetValue(Batch);
        if (b < 1 || b > 64) throw new UserException($"--batch must be between 1 and 64, got {b}");
        CheckSize(r.GetValue(Width), r.GetValue(Height));
        if (r.GetValue(Threads) is int th)
        {
            if (th < 1 || th > 1024) throw new UserException($"--threads must be between 1 and 1024, got {th}");
            Par.Threads = th;
        }
        var output = r.GetValue(Output)!;
        if (output == SafeFile.StandardOutput && b > 1) throw new UserException("-o - writes one PNG to standard output; with --batch > 1 name a file (NAME-0.png, NAME-1.png, ...)");
        // Checked before the model loads, so a mistyped path does not cost a whole generation.
        SafeFile.CheckWritable(output, "-o");
        if (r.GetValue(SaveLatents) is string sl) SafeFile.CheckWritable(sl, "--save-latents");
        var outDir = Path.GetDirectoryName(Path.GetFullPath(output))!;
        return (prompt, outDir);
    }

    /// <summary>
    /// The request for --batch copies of the prompt with the given (or a new random) seed, printed so the run can be
    /// repeated; --init-latents is read here (dispose InitLatents after use).
    /// </summary>
    public GenerationRequest Request(ParseResult r, string prompt, int steps, float guidance)
    {
        var neg = r.GetValue(Negative);
        ulong seed = r.GetValue(Seed) ?? SeedPolicy.NewSeed();
        if (r.GetValue(Seed) == null && r.GetValue(InitLatents) == null) CliIO.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {seed}"));
        return new GenerationRequest
        {
            Prompts = [prompt], NegativePrompts = neg == null ? null : [neg],
            Steps = steps, Guidance = guidance, Seed = seed,
            Width = r.GetValue(Width), Height = r.GetValue(Height),
            InitLatents = r.GetValue(InitLatents) is string lf ? LatentsFile.Read(lf) : null,
        };
    }

    /// <summary>Prints the timing line, writes one PNG per image with its parameters and the optional latents file.</summary>
    public void WriteResults(ParseResult r, GenerationResult res, string outDir)
    {
        CliIO.Err.WriteLine(string.Join(", ", res.Timings.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Stage} {t.Seconds:F3} s"))));
        var outPath = r.GetValue(Output)!;
        int b = res.ImagesHwc.Length;
        for (int i = 0; i < b; i++)
        {
            var path = b == 1 ? outPath : Path.Combine(outDir, $"{Path.GetFileNameWithoutExtension(outPath)}-{i}{Path.GetExtension(outPath)}");
            Png.Write(path, res.Width, res.Height, 3, res.ImagesHwc[i], res.Metadata[i].ToPngText());
            // With -o - the PNG itself is standard output; a path line would corrupt it.
            if (path != SafeFile.StandardOutput) CliIO.Out.WriteLine(path);
        }
        if (r.GetValue(SaveLatents) is string sl) LatentsFile.Write(sl, res.FinalLatents);
        res.FinalLatents.Dispose();
    }
}
