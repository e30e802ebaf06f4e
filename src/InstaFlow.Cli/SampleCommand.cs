// `instaflow sample`: text to PNG with the SD-1.5 teacher (StableDiffusionPipeline) and a DPM-Solver++, DDIM or
// Euler scheduler configured from the model's scheduler_config.json.
using System.CommandLine;
using System.Diagnostics;
using InstaFlow.Flow.Schedulers;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

public static class SampleCommand
{
    public static Command Create()
    {
        var model = new ModelOptions(required: true, what: "the SD-1.5-family teacher");
        var steps = new Option<int>("--steps") { Description = "sampler steps", DefaultValueFactory = _ => 25 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance scale; on when > 1", DefaultValueFactory = _ => 7.5f };
        var sched = new SchedulerOptions();
        var io = new ImageOptions();

        var cmd = new Command("sample", "Sample an image with the Stable Diffusion teacher (epsilon prediction, DPM-Solver++/DDIM/Euler)");
        model.AddTo(cmd);
        cmd.Options.Add(steps);
        cmd.Options.Add(guidance);
        sched.AddTo(cmd);
        io.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var (prompt, outDir) = io.Validate(r);
            var source = model.Source(r, r.GetValue(io.Variant));
            // a single file has no scheduler config: --config's, else SD-1.5's
            var scheduler = sched.Resolve(r, source.ConfigDir ?? source.Path);

            var load = Stopwatch.StartNew();
            using var components = SdComponents.Open(source);
            CliIO.Err.WriteLine($"loaded {components.Name} in {load.Elapsed.TotalSeconds:F2} s; scheduler {scheduler.Config.ClassName} ({scheduler.Config.TimestepSpacing} spacing)");
            var pipe = new StableDiffusionPipeline(components, scheduler);
            foreach (var w in pipe.TruncationWarnings(new[] { prompt, r.GetValue(io.Negative) ?? "" })) CliIO.Err.WriteLine($"warning: {w}");

            // the batch runs as one solve; image i's noise is the seed policy's (seed + i), as generate's
            int b = r.GetValue(io.Batch);
            var one = io.Request(r, prompt, r.GetValue(steps), r.GetValue(guidance));
            var req = one with { Prompts = Enumerable.Repeat(prompt, b).ToArray(), NegativePrompts = one.NegativePrompts == null ? null : Enumerable.Repeat(one.NegativePrompts[0], b).ToArray() };
            var res = ProgressDisplay.Run("sample", p =>
            {
                pipe.Progress = g => p.Report(new JobProgress(g.Step + 1, g.Steps));
                return pipe.Generate(req);
            });
            req.InitLatents?.Dispose();
            io.WriteResults(r, res, outDir);
            return 0;
        });
        return cmd;
    }
}

/// <summary>--scheduler / --scheduler-config: which sampler, configured from which scheduler_config.json.</summary>
internal sealed class SchedulerOptions
{
    public readonly Option<string?> Scheduler = new("--scheduler")
    {
        Description = "dpm++ (DPM-Solver++ 2M), ddim or euler; default: the class in the model's scheduler/scheduler_config.json (dpm++ if absent or unsupported)",
    };
    public readonly Option<string?> Config = new("--scheduler-config") { Description = "scheduler_config.json to use instead of the model's scheduler/scheduler_config.json" };

    public SchedulerOptions() => Scheduler.AcceptOnlyFromAmong("dpm++", "ddim", "euler");

    public void AddTo(Command cmd)
    {
        cmd.Options.Add(Scheduler);
        cmd.Options.Add(Config);
    }

    /// <summary>The library's from_config resolution of the options (SchedulerResolver).</summary>
    public NoiseScheduler Resolve(ParseResult r, string modelDir) =>
        SchedulerResolver.Resolve(modelDir, r.GetValue(Scheduler), r.GetValue(Config), n => CliIO.Err.WriteLine($"note: {n}"));
}
