// `instaflow straightness`: per-prompt straightness S and x1-extrapolation errors of a diffusers-folder flow
// (InstaFlow / 2-Rectified-Flow style), from generate's noise and guidance.
using System.CommandLine;
using System.Globalization;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

public static class StraightnessCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var prompts = new Option<string>("--prompts") { Description = "prompts separated by ';'", Required = true };
        var steps = new Option<int>("--steps") { Description = "Euler steps of the measured trajectory", DefaultValueFactory = _ => 25 };
        var guidance = new Option<float>("--guidance") { DefaultValueFactory = _ => 0f };
        var negative = new Option<string?>("--negative-prompt");
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var c = new Command("straightness", "Straightness S(Z) and x1-extrapolation errors per prompt (0 = straight: one Euler step is exact)")
            { prompts, steps, guidance, negative, seed };
        model.AddTo(c);
        c.SetAction(r =>
        {
            var list = r.GetValue(prompts)!.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (list.Length == 0) throw new UserException("--prompts has no prompt; separate prompts with ';'");
            using var parts = SdComponents.Open(model.Source(r));
            var rows = PipelineStraightness.Measure(parts, list, r.GetValue(steps), r.GetValue(guidance), r.GetValue(negative), r.GetValue(seed));
            var inv = CultureInfo.InvariantCulture;
            CliIO.Out.WriteLine("| prompt | S | transport cost E|Z1-Z0|^2 | x1 extrapolation error at t = 0, 1/4, 1/2, 3/4 |");
            CliIO.Out.WriteLine("|---|---|---|---|");
            foreach (var row in rows)
            {
                var e = row.ExtrapolationErrors;
                var picks = new[] { 0, e.Length / 4, e.Length / 2, 3 * e.Length / 4 }.Select(i => e[i].ToString("G4", inv));
                CliIO.Out.WriteLine(string.Create(inv, $"| {row.Prompt} | {row.Straightness:G4} | {row.TransportCost:G4} | {string.Join(", ", picks)} |"));
            }
            CliIO.Out.WriteLine(string.Create(inv, $"mean S over {rows.Count} prompts: {rows.Average(x => x.Straightness):G4}"));
            return 0;
        });
        return c;
    }
}
