// Shows a long job's progress on CliIO.Err: a Spectre.Console bar with elapsed time and ETA when stderr is a terminal,
// else plain lines ("train flow: 100/1000 (10%), loss 0.1230, lr 0.0005, 12.3 s, 1m 51s left") at most every PlainInterval.
//
// Use:  ProgressDisplay.Run("fid features", p => Fid.Features(model, files, batch, p));          // IProgress<JobProgress>
//       ProgressDisplay.Run("train flow", p => Training.Run(o with { Progress = p.Training }, p.Log));
//       ProgressDisplay.Run("generate", p => { pipe.Progress = g => p.Report(new JobProgress(g.Step + 1, g.Steps)); return pipe.Generate(req); });
// The work runs on the calling thread; p is an IProgress<JobProgress>, p.Training adapts the Trainer's per-step
// reports, and p.Log prints a line above a live bar (writing to CliIO.Err directly while the bar is drawn would tear it).
// A report with a new Stage ends the current bar and starts one named after the stage.
using System.Diagnostics;
using System.Globalization;
using InstaFlow.Training;
using Spectre.Console;

namespace InstaFlow.Cli;

public sealed class ProgressDisplay : IProgress<JobProgress>
{
    /// <summary>Least time between two plain progress lines of one stage (the first and the last are always printed).</summary>
    public static TimeSpan PlainInterval { get; set; } = TimeSpan.FromSeconds(10);

    private readonly string _label;
    private readonly ProgressContext? _live;
    private readonly IAnsiConsole? _console;
    private readonly Stopwatch _stageClock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private ProgressTask? _task;
    private string? _stage;
    private bool _started;
    private TimeSpan _lastLine;
    // The stage's first report: a resumed job starts at step k, and its rate must count only the steps done since.
    private (long Done, TimeSpan At)? _origin;

    private ProgressDisplay(string label, IAnsiConsole? console, ProgressContext? live)
    {
        _label = label; _console = console; _live = live;
        Training = new TrainingAdapter(this);
    }

    /// <summary>Runs work with a display for it and returns what work returns.</summary>
    public static T Run<T>(string label, Func<ProgressDisplay, T> work)
    {
        if (!CliIO.ErrIsTerminal) return work(new ProgressDisplay(label, null, null));
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error),
            // CliIO.ErrIsTerminal has checked stderr itself; Spectre's own test also looks at stdin and stdout.
            Interactive = InteractionSupport.Yes,
        });
        return console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => work(new ProgressDisplay(label, console, ctx)));
    }

    /// <summary>Runs work with a display for it.</summary>
    public static void Run(string label, Action<ProgressDisplay> work) => Run(label, p => { work(p); return 0; });

    /// <summary>The same display as a Trainer progress sink: step/total with loss and learning rate.</summary>
    public IProgress<TrainingProgress> Training { get; }

    /// <summary>A sink whose reports all belong to the named stage (one bar per stage, e.g. per evaluated model).</summary>
    public IProgress<JobProgress> Stage(string stage) => new StageAdapter(this, stage);

    /// <summary>Prints one line of text on CliIO.Err, above the bar when one is drawn.</summary>
    public void Log(string line)
    {
        lock (_gate)
        {
            if (_console != null) _console.WriteLine(line);
            else CliIO.Err.WriteLine(line);
        }
    }

    public void Report(JobProgress value)
    {
        lock (_gate)
        {
            if (!_started || value.Stage != _stage) StartStage(value.Stage);
            string name = _stage == null ? _label : $"{_label} {_stage}";
            if (_live != null) Draw(name, value);
            else WritePlain(name, value);
        }
    }

    private void StartStage(string? stage)
    {
        // Stopped even when full: Spectre keeps a finished task's elapsed time running until StopTask.
        _task?.StopTask();
        _task = null;
        _stage = stage;
        _started = true;
        _stageClock.Restart();
        _lastLine = TimeSpan.MinValue;
        _origin = null;
    }

    private void Draw(string name, JobProgress p)
    {
        _task ??= _live!.AddTask(Markup.Escape(name), new ProgressTaskSettings { MaxValue = Math.Max(1, p.Total) });
        _task.MaxValue = Math.Max(1, p.Total);
        _task.Value = Math.Min(p.Done, _task.MaxValue);
        _task.Description = Markup.Escape(p.Detail == null ? name : $"{name}  {p.Detail}");
    }

    private void WritePlain(string name, JobProgress p)
    {
        var now = _stageClock.Elapsed;
        _origin ??= (p.Done, now);
        bool last = p.Total > 0 && p.Done >= p.Total;
        // The first report, the last one, and one per interval in between: a job of hours must not flood a log file.
        if (_lastLine != TimeSpan.MinValue && !last && now - _lastLine < PlainInterval) return;
        _lastLine = now;
        CliIO.Err.WriteLine(PlainLine(name, p, now, _origin));
    }

    /// <summary>
    /// "label: done/total (pct), detail, seconds s, ETA left": the ETA only once a second has passed (a rate from the first
    /// step alone says nothing) and while something remains. The rate is taken from origin (the stage's first report: a
    /// job resumed at step 2000 of 5000 has done only what it did since) when given, else from zero.
    /// </summary>
    public static string PlainLine(string name, JobProgress p, TimeSpan elapsed, (long Done, TimeSpan At)? origin = null)
    {
        var inv = CultureInfo.InvariantCulture;
        var line = new System.Text.StringBuilder(string.Create(inv, $"{name}: {p.Done}/{p.Total}"));
        if (p.Total > 0) line.Append(string.Create(inv, $" ({100.0 * p.Done / p.Total:F0}%)"));
        if (!string.IsNullOrEmpty(p.Detail)) line.Append(", ").Append(p.Detail);
        line.Append(string.Create(inv, $", {elapsed.TotalSeconds:F1} s"));
        var (fromDone, fromTime) = origin ?? (0, TimeSpan.Zero);
        long done = p.Done - fromDone;
        var spent = elapsed - fromTime;
        if (done > 0 && p.Done < p.Total && spent >= TimeSpan.FromSeconds(1))
            line.Append(", ").Append(Duration(spent * ((double)(p.Total - p.Done) / done))).Append(" left");
        return line.ToString();
    }

    private static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h {t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m {t.Seconds:D2}s" : $"{t.TotalSeconds:F0} s";

    private sealed class StageAdapter(ProgressDisplay display, string stage) : IProgress<JobProgress>
    {
        public void Report(JobProgress value) => display.Report(value with { Stage = stage });
    }

    private sealed class TrainingAdapter(ProgressDisplay display) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => display.Report(value.ToJob(display._stage));
    }
}
