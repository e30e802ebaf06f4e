// InstaFlow stage 1 + 2 end to end on the tiny SD-1.5 fixture as the teacher: 64 triplets in 2 shards, then a
// text-conditioned reflow of the UNet; the loss falls and the one-step output moves toward the teacher's output.
using InstaFlow.Flow;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tests.Cli;
using InstaFlow.Training.Reflow;
using InstaFlow.Training.Triplets;

namespace InstaFlow.Tests.Training;

public sealed class TextReflowTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("reflow-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    /// <summary>Mean squared distance between the one-step output x0 + v(x0, t=0) and the teacher's latents, per element.</summary>
    internal static double OneStepL2(string modelDir, TripletSet set)
    {
        using var model = SdComponents.Load(modelDir);
        var (embeds, _) = TextReflow.EncodePrompts(model, set.Prompts);
        var flow = new FlowModel(new DenoiserVelocity(model.Unet), FlowConvention.InstaFlow);
        using var ng = GradMode.NoGrad();
        using var scope = TensorScope.Begin();
        var cond = Tensor.Empty([set.Count, .. embeds.ShapeArray()[1..]]);
        for (int k = 0; k < set.Count; k++) Rows.Copy(embeds, set.PromptIndex[k], cond, k);
        var x1 = Ops.Add(set.Noise, flow.Velocity(set.Noise, 0f, cond));
        double d = 0;
        var a = x1.Span; var b = set.Latents.Span;
        for (int i = 0; i < a.Length; i++) d += (a[i] - b[i]) * (double)(a[i] - b[i]);
        embeds.Dispose();
        return d / a.Length;
    }

    [Fact]
    public void TripletsThenReflow_TinyTeacher_LossFallsAndOneStepApproachesTeacher()
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllLines(prompts, new[] { "a photo of a cat", "a red apple", "two dogs on a beach", "an astronaut riding a horse" });
        var triplets = Path.Combine(_tmp, "triplets");
        foreach (var shard in new[] { "0/2", "1/2" })
        {
            var (code, _, err) = CliRunner.Run("triplets", "--teacher", Tiny, "--prompts", prompts, "--count", "64", "--steps", "5", "--guidance", "3",
                "--seed", "11", "--shard", shard, "--shard-size", "16", "--batch", "8", "--out", triplets);
            Assert.True(code == 0, err);
        }
        using var set = TripletSet.Load(triplets, prompts);
        Assert.Equal(64, set.Count);
        double before = OneStepL2(Tiny, set);

        var student = Path.Combine(_tmp, "student");
        var trainer = TextReflow.Run(Tiny, triplets, prompts, student, new TextReflowOptions
        {
            Steps = 300, BatchSize = 8, LearningRate = 2e-3f, WarmupSteps = 20, CondDropout = 0.1f, Seed = 5, CheckpointEvery = 0,
        });
        var log = File.ReadAllLines(Path.Combine(student, "train_log.jsonl"));
        double Loss(string line) => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("loss").GetDouble();
        double early = log.Take(3).Average(Loss), late = log.TakeLast(3).Average(Loss);
        double after = OneStepL2(student, set);
        output.WriteLine($"reflow loss (mean of first/last 3 log lines): {early:F4} -> {late:F4}; one-step L2 to the teacher: {before:F4} -> {after:F4}");
        Assert.True(late < 0.5 * early, $"reflow loss went from {early:F4} to {late:F4}");
        Assert.True(after < 0.5 * before, $"one-step L2 to the teacher went from {before:F4} to {after:F4}");

        // The result is a model folder that `generate` runs as a 2-rectified flow.
        var (gcode, _, gerr) = CliRunner.Run("generate", "--model", student, "a red apple", "--steps", "2", "--guidance", "1.5", "--output", Path.Combine(_tmp, "apple.png"));
        Assert.True(gcode == 0, gerr);
    }

    // A single-file teacher (an LDM checkpoint read with --config): triplets and reflow take it like a folder, and the
    // student is written whole as a diffusers folder that generate runs.
    [Fact]
    public void Reflow_SingleFileTeacher_WritesAWholeFolderThatGenerates()
    {
        var dir = Path.Combine(TestUtil.Fixtures, "single_file");
        string[] teacher = ["--teacher", Path.Combine(dir, "ldm.safetensors"), "--config", Path.Combine(dir, "mini-sd15")];
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllLines(prompts, new[] { "a photo of a cat", "a red apple" });
        var triplets = Path.Combine(_tmp, "triplets-file");
        var (code, _, err) = CliRunner.Run(["triplets", .. teacher, "--prompts", prompts, "--count", "8", "--steps", "2", "--guidance", "3",
            "--seed", "3", "--shard-size", "8", "--batch", "4", "--out", triplets]);
        Assert.True(code == 0, err);
        var student = Path.Combine(_tmp, "student-file");
        (code, _, err) = CliRunner.Run(["reflow", .. teacher, "--triplets", triplets, "--prompts", prompts, "--out", student, "--steps", "3", "--batch", "4"]);
        Assert.True(code == 0, err);
        using (var m = SdComponents.Load(student)) Assert.All(m.Reports, r => Assert.True(r.IsComplete, r.Describe()));
        (code, _, err) = CliRunner.Run("generate", "--model", student, "a red apple", "--steps", "2", "--output", Path.Combine(_tmp, "apple-file.png"));
        Assert.True(code == 0, err);
    }
}
