// `instaflow experiment toy2d`: runs the 2D rectified-flow experiment and prints its table (or JSON lines).
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using InstaFlow.Experiments;

namespace InstaFlow.Cli;

public static class ExperimentCommand
{
    public static Command Create()
    {
        var cmd = new Command("experiment", "Reproduce experiments from the papers");
        var json = new Option<bool>("--json") { Description = "Print one JSON object per model instead of a table" };
        var seed = new Option<ulong>("--seed") { Description = "Seed for initialization, training and evaluation", DefaultValueFactory = _ => 0 };
        var outDir = new Option<string?>("--out") { Description = "Directory for the trajectory figure, training logs and pair shards" };
        var toy = new Command("toy2d", "1-RF, 2-RF, 3-RF and a distilled one-step flow from N(0, I) to a 2D Gaussian mixture") { json, seed, outDir };
        toy.SetAction(parseResult =>
        {
            bool asJson = parseResult.GetValue(json);
            // JSON output is for scripts: no progress lines to strip
            var result = ProgressDisplay.Run("toy2d", p =>
                Toy2d.Run(new Toy2dOptions { Seed = parseResult.GetValue(seed), OutDir = parseResult.GetValue(outDir), Progress = asJson ? null : p }));
            if (asJson)
                foreach (var r in result.Rows)
                    CliIO.Out.WriteLine(JsonSerializer.Serialize(new
                    {
                        model = r.Model, straightness = r.Straightness, error_1step = r.Error1Step,
                        error_100step = r.Error100Step, transport_cost = r.TransportCost,
                    }));
            else
            {
                CliIO.Out.WriteLine($"{"model",-10} {"straightness",12} {"error_1step",12} {"error_100step",14} {"transport_cost",15}");
                foreach (var r in result.Rows)
                    CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{r.Model,-10} {r.Straightness,12:F4} {r.Error1Step,12:F4} {r.Error100Step,14:F4} {r.TransportCost,15:F3}"));
                CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wall time {result.Seconds:F1} s") + (result.FigurePath != null ? $", figure {result.FigurePath}" : ""));
            }
            return 0;
        });
        cmd.Subcommands.Add(toy);
        return cmd;
    }
}
