// `instaflow invert`: an image to the noise the InstaFlow pipeline maps onto it (VAE encode + Euler inversion),
// written as a latents file for `generate --init-latents` (same prompt: reconstruction; another prompt: an edit).
using System.CommandLine;
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Cli;

public static class InvertCommand
{
    /// <summary>The largest image invert encodes: 2048x2048, the server's default budget for one image.</summary>
    public const long MaxInvertPixels = 2048L * 2048;

    public static Command Create()
    {
        var model = new ModelOptions();
        var image = new Option<string>("--image") { Description = "image to invert: PNG, JPEG, WebP, BMP or GIF (sides multiples of 8)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "the prompt the image is inverted under", Required = true };
        var negative = new Option<string?>("--negative-prompt") { Description = "negative prompt (with --guidance > 1)" };
        var steps = new Option<int>("--steps") { Description = "Euler steps (as generate will use)", DefaultValueFactory = _ => 1 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance (as generate will use)", DefaultValueFactory = _ => 0f };
        var iterations = new Option<int>("--iterations") { Description = "fixed-point iterations per step (1: z0 = x1 - v(x1); more: closer to the exact inverse)", DefaultValueFactory = _ => 10 };
        var output = new Option<string>("--output", "-o") { Description = "latents file (safetensors) for generate --init-latents", Required = true };
        var c = new Command("invert", "Find the noise that generate maps onto an image (for reconstruction and prompt edits)")
            { image, prompt, negative, steps, guidance, iterations, output };
        model.AddTo(c);
        c.SetAction(r =>
        {
            if (r.GetValue(iterations) < 1) throw new UserException($"--iterations must be at least 1, got {r.GetValue(iterations)}");
            // The VAE encoder's cost and memory grow with the pixel count (its attention quadratically): a small file
            // claiming 4096x4096 must be refused before decoding, not after gigabytes of work.
            var png = ImageFile.Read(r.GetValue(image)!, new ImageLimits(ImageSize.MaxSide, MaxInvertPixels));
            using var parts = SdComponents.Open(model.Source(r));
            using var scope = TensorScope.Begin();
            var latents = RectifiedFlowInversion.EncodeImage(parts, png.Pixels, png.Width, png.Height);
            var req = new InversionRequest
            {
                Prompt = r.GetValue(prompt)!, NegativePrompt = r.GetValue(negative), Steps = r.GetValue(steps),
                Guidance = r.GetValue(guidance), Iterations = r.GetValue(iterations),
            };
            var noise = RectifiedFlowInversion.InvertLatents(parts, latents, req);
            LatentsFile.Write(r.GetValue(output)!, noise);
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote noise {ShapeUtil.Format(noise.Shape)} to {r.GetValue(output)}; reconstruct with: generate --init-latents {r.GetValue(output)} --width {png.Width} --height {png.Height} --steps {req.Steps} --guidance {req.Guidance} \"{req.Prompt}\""));
            return 0;
        });
        return c;
    }
}
