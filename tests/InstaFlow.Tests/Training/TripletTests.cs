// Triplet generation on the tiny teacher: shard layout independence (1 vs 3 processes give identical bytes),
// resume after a simulated kill, verification of corrupted shards, and the prompts-file and CLI errors.
using InstaFlow.Flow.Schedulers;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Tests.Cli;
using InstaFlow.Tests.Pipelines;
using InstaFlow.Training.Triplets;

namespace InstaFlow.Tests.Training;

public sealed class TripletTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-triplets-").FullName;
    private static readonly string[] Prompts = { "a photo of a cat", "a red car", "an astronaut riding a horse" };
    private static readonly TripletSettings Settings = new() { Count = 5, Steps = 2, Guidance = 3f, BaseSeed = 7, ShardSize = 2, Batch = 2 };

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private static TripletGenerator Generator() =>
        new(new StableDiffusionPipeline(RectifiedFlowPipelineTests.Model, NoiseScheduler.Create(SchedulerConfig.StableDiffusion15(SchedulerConfig.DpmSolverMultistep))),
            Prompts, "test-prompts-sha", Settings);

    private string Dir(string name) => Path.Combine(_tmp, name);

    [Fact]
    public void Triplets_OneVersusThreeShards_ByteIdenticalFiles()
    {
        Generator().Run(Dir("one"), 0, 1);
        // Out of order on purpose: a part's output must not depend on which parts ran before it.
        foreach (int i in new[] { 2, 0, 1 }) Generator().Run(Dir("three"), i, 3);
        for (int s = 0; s < 3; s++)
        {
            var name = TripletGenerator.ShardFileName(s);
            Assert.True(File.ReadAllBytes(Path.Combine(Dir("one"), name)).SequenceEqual(File.ReadAllBytes(Path.Combine(Dir("three"), name))), $"{name} differs between 1 and 3 shards");
        }
        Assert.Empty(TripletGenerator.Verify(Dir("one")));
        Assert.Empty(TripletGenerator.Verify(Dir("three")));
        Assert.True(File.Exists(Path.Combine(Dir("three"), "manifest-1-of-3.json")));

        // triplet 3 = shard 1, row 1: noise from seed 7*1000003 + 3, prompt 3 mod 3 = 0
        using var f = SafeTensors.Open(Path.Combine(Dir("one"), TripletGenerator.ShardFileName(1)));
        using var scope = TensorScope.Begin();
        var noise = f.ReadF32("noise");
        Assert.Equal(new[] { 2, 4, 8, 8 }, noise.ShapeArray());
        var expected = new TorchGenerator(7UL * 1000003 + 3).Randn(1, 4, 8, 8);
        TestUtil.AssertClose(expected.Span, noise.Span[256..], 0f, what: "noise of triplet 3");
        Assert.Equal(new long[] { 2, 0 }, f.ReadI64("prompt_index"));
        Assert.Equal(new[] { 2, 4, 8, 8 }, f.Info("final_latents").Shape);
    }

    [Fact]
    public void Triplets_KilledRunWithTmpLeftoverAndMissingShard_ResumeRedoesOnlyThatShard()
    {
        var dir = Dir("resume");
        Generator().Run(dir, 0, 1);
        var victim = Path.Combine(dir, TripletGenerator.ShardFileName(1));
        var original = File.ReadAllBytes(victim);
        File.Delete(victim);
        // A killed writer leaves SafeFile's temp file (".NAME.RANDOM.tmp") beside the missing shard.
        var leftover = Path.Combine(dir, "." + TripletGenerator.ShardFileName(1) + ".0badf00d.tmp");
        File.WriteAllBytes(leftover, original[..(original.Length / 3)]);
        Assert.NotEmpty(TripletGenerator.Verify(dir));

        var report = Generator().Run(dir, 0, 1);
        Assert.Equal(new[] { 1 }, report.Generated);
        Assert.Equal(new[] { 0, 2 }, report.Skipped);
        // Other parts may be writing into the same shared folder, so temp files are never deleted by a resume; the
        // leftover is simply not taken for the shard.
        Assert.True(File.Exists(leftover));
        Assert.True(original.SequenceEqual(File.ReadAllBytes(victim)), "regenerated shard differs from the first run");
        Assert.Empty(TripletGenerator.Verify(dir));
    }

    [Fact]
    public void Triplets_CorruptedShard_VerifyAndCliReportIt()
    {
        var dir = Dir("corrupt");
        Generator().Run(dir, 0, 1);
        var path = Path.Combine(dir, TripletGenerator.ShardFileName(2));
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        var problems = TripletGenerator.Verify(dir);
        Assert.Contains(problems, p => p.Contains("shard-000002.safetensors") && p.Contains("sha256"));
        var (code, stdout, _) = CliRunner.Run("triplets", "--verify", "--out", dir);
        Assert.Equal(1, code);
        Assert.Contains("shard-000002.safetensors", stdout);
    }

    [Fact]
    public void Triplets_OtherParametersInSameFolder_RefusesToMix()
    {
        var dir = Dir("mixed");
        Generator().Run(dir, 0, 1);
        var other = new TripletGenerator(new StableDiffusionPipeline(RectifiedFlowPipelineTests.Model, NoiseScheduler.Create(SchedulerConfig.StableDiffusion15(SchedulerConfig.Ddim))),
            Prompts, "test-prompts-sha", Settings);
        var e = Assert.Throws<InvalidInputException>(() => other.Run(dir, 0, 1));
        Assert.Contains("scheduler", e.Message);
    }

    [Fact]
    public void Triplets_TeacherWithOtherWeights_RefusesToMix_SameWeightsUnderAnotherNameResume()
    {
        var dir = Dir("teacher");
        Generator().Run(dir, 0, 1);
        // the same weights in a folder with another name and path
        var src = Path.Combine(TestUtil.Fixtures, "tiny-sd15");
        var renamed = Dir("renamed-teacher");
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(renamed, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        using var copy = SdComponents.Load(renamed);
        Assert.NotEqual(RectifiedFlowPipelineTests.Model.Name, copy.Name);
        Assert.Equal(RectifiedFlowPipelineTests.Model.WeightsSha256(), copy.WeightsSha256());
        var scheduler = SchedulerConfig.StableDiffusion15(SchedulerConfig.DpmSolverMultistep);
        var again = new TripletGenerator(new StableDiffusionPipeline(copy, NoiseScheduler.Create(scheduler)), Prompts, "test-prompts-sha", Settings).Run(dir, 0, 1);
        Assert.Empty(again.Generated);

        copy.Unet.NamedParameters().First().Param.Value.Span[0] += 1e-3f;
        var other = new TripletGenerator(new StableDiffusionPipeline(copy, NoiseScheduler.Create(scheduler)), Prompts, "test-prompts-sha", Settings);
        var e = Assert.Throws<InvalidInputException>(() => other.Run(dir, 0, 1));
        Assert.Contains("model_sha256", e.Message);
    }

    [Fact]
    public void TripletsCli_EmptyPromptLine_ErrorNamesLine()
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a cat\na dog\n\na bird\n");
        CliRunner.AssertUserError(new[] { "triplets", "--teacher", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--prompts", prompts, "--count", "2", "--out", Dir("cli") },
            "line 3", "empty");
    }

    [Fact]
    public void TripletsCli_SecondOfTwoShards_WritesItsFilesAndManifest()
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a cat\r\na dog\r\n");
        var (code, stdout, err) = CliRunner.Run("triplets", "--teacher", Path.Combine(TestUtil.Fixtures, "tiny-sd15"), "--prompts", prompts, "--count", "3",
            "--shard-size", "1", "--steps", "2", "--guidance", "2", "--seed", "5", "--shard", "1/2", "--scheduler", "euler", "--out", Dir("cli"));
        Assert.True(code == 0, err);
        Assert.Contains("1 shard file(s) generated", stdout);
        Assert.True(File.Exists(Path.Combine(Dir("cli"), "shard-000001.safetensors")));
        Assert.False(File.Exists(Path.Combine(Dir("cli"), "shard-000000.safetensors")));
        var manifest = TripletManifest.Load(Path.Combine(Dir("cli"), "manifest-1-of-2.json"));
        Assert.Equal("3", manifest.Parameters["count"]);
        Assert.Contains("EulerDiscreteScheduler", manifest.Parameters["scheduler"]);
        // Only part 1 of 2 ran: verify must say shards 0 and 2 are missing.
        var (vcode, vout, _) = CliRunner.Run("triplets", "--verify", "--out", Dir("cli"));
        Assert.Equal(1, vcode);
        Assert.Contains("shard-000000.safetensors, shard-000002.safetensors", vout);
    }

    [Fact]
    public void TripletsCli_BadShardSpec_OneLineError() =>
        CliRunner.AssertUserError(new[] { "triplets", "--shard", "3/3", "--out", Dir("x") }, "--shard 3/3", "0 <= i < n");
}
