// What the Trainer reports after every optimizer step, so front ends can draw progress without the library printing.
using System.Globalization;

namespace InstaFlow.Training;

/// <summary>The state after optimizer step <paramref name="Step"/> of <paramref name="TotalSteps"/>.</summary>
/// <param name="Step">Steps done, counting the steps of a resumed checkpoint.</param>
/// <param name="TotalSteps">The step the run trains to.</param>
/// <param name="Loss">Loss of the last step.</param>
/// <param name="LearningRate">Learning rate the last step used (after warmup).</param>
/// <param name="Elapsed">Wall time since this call of Train began (a resumed run starts from zero).</param>
public readonly record struct TrainingProgress(long Step, long TotalSteps, float Loss, float LearningRate, TimeSpan Elapsed)
{
    /// <summary>The last periodic evaluation, e.g. "psnr_db 27.31 at step 500" (null: none yet).</summary>
    public string? Eval { get; init; }

    /// <summary>As a generic job report: Done = Step, Total = TotalSteps, Detail "loss L, lr R" (then "; " and Eval).</summary>
    public JobProgress ToJob(string? stage = null) =>
        new(Step, TotalSteps, string.Create(CultureInfo.InvariantCulture,
            $"loss {Loss:F4}, lr {LearningRate.ToString("G3", CultureInfo.InvariantCulture).ToLowerInvariant()}{(Eval == null ? "" : "; " + Eval)}"), stage);

    /// <summary>An IProgress that forwards each step to a job-progress sink as <see cref="ToJob"/> (null stays null).</summary>
    public static IProgress<TrainingProgress>? AsJob(IProgress<JobProgress>? sink, string? stage = null) =>
        sink == null ? null : new Forward(sink, stage);

    // Synchronous on purpose: System.Progress<T> posts to the captured context or the thread pool, so its reports could
    // arrive after Train has returned.
    private sealed class Forward(IProgress<JobProgress> sink, string? stage) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => sink.Report(value.ToJob(stage));
    }
}
