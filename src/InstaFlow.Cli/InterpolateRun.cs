// `generate --interpolate "A" "B" --frames N`: the frames of LatentInterpolation as NAME-000.png ... plus NAME.gif.
using System.CommandLine;
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

internal static class InterpolateRun
{
    public static int Run(ParseResult r, ImageOptions io, string[] prompts, int frames, SdComponents model, int? steps, float? guidance)
    {
        if (prompts.Length != 2) throw new UserException($"--interpolate takes two prompts, got {prompts.Length}");
        if (frames < 2 || frames > 1000) throw new UserException($"--frames must be between 2 and 1000, got {frames}");
        ulong seed = r.GetValue(io.Seed) ?? SeedPolicy.NewSeed();
        if (r.GetValue(io.Seed) == null) CliIO.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {seed}"));
        var req = new InterpolationRequest
        {
            PromptA = prompts[0], PromptB = prompts[1], NegativePrompt = r.GetValue(io.Negative), Frames = frames,
            Steps = steps ?? model.Defaults.Steps, Guidance = guidance ?? model.Defaults.Guidance, Seed = seed,
            Width = r.GetValue(io.Width), Height = r.GetValue(io.Height),
        };
        var res = ProgressDisplay.Run("interpolate", p => LatentInterpolation.Run(model, req,
            g => p.Report(new JobProgress((long)g.Image * g.Steps + g.Step + 1, (long)g.Images * g.Steps))));
        CliIO.Err.WriteLine(string.Join(", ", res.Timings.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Stage} {t.Seconds:F3} s"))));
        var outPath = Path.GetFullPath(r.GetValue(io.Output)!);
        var stem = Path.Combine(Path.GetDirectoryName(outPath)!, Path.GetFileNameWithoutExtension(outPath));
        for (int k = 0; k < frames; k++)
        {
            var path = $"{stem}-{k:D3}.png";
            Png.Write(path, res.Width, res.Height, 3, res.ImagesHwc[k], res.Metadata[k].ToPngText());
            CliIO.Out.WriteLine(path);
        }
        GifWriter.Write(stem + ".gif", res.Width, res.Height, res.ImagesHwc, delayCentiseconds: 12);
        CliIO.Out.WriteLine(stem + ".gif");
        if (r.GetValue(io.SaveLatents) is string sl) LatentsFile.Write(sl, res.FinalLatents);
        res.FinalLatents.Dispose();
        return 0;
    }
}
