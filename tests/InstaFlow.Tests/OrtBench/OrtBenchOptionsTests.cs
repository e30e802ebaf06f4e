// The ONNX Runtime comparison's argument parsing, its file checks and its pair statistics. Those files are compiled
// into this project by link (see the csproj), so the tests need neither ONNX Runtime nor any ONNX file.
using InstaFlow.OrtBench;

namespace InstaFlow.Tests.OrtBench;

public class OrtBenchOptionsTests
{
    [Fact]
    public void Parse_Defaults_AllStagesBothEnginesFivePairs()
    {
        var o = OrtBenchOptions.Parse(["--onnx", "o", "--model", "m"])!;
        Assert.Equal(OrtBenchOptions.AllStages, o.Stages);
        Assert.Equal(5, o.Pairs);
        Assert.Equal(Environment.ProcessorCount, o.Threads);
        Assert.True(o.RunsOrt && o.RunsOurs);
        Assert.Null(o.RefFile);
        Assert.False(o.Prepack);
    }

    [Fact]
    public void Parse_Prepack_IsAFlagBeforeOtherOptions()
    {
        var o = OrtBenchOptions.Parse(["--prepack", "--onnx", "o", "--model", "m"])!;
        Assert.True(o.Prepack);
        Assert.False(o.Profile);
        Assert.Equal("o", o.OnnxDir);
        Assert.True(OrtBenchOptions.Parse(["--onnx", "o", "--profile", "--model", "m"])!.Profile);
    }

    [Fact]
    public void Parse_PrepackRows_NeedsPrepackAndAPositiveCount()
    {
        Assert.Equal(1024, OrtBenchOptions.Parse(["--prepack", "--onnx", "o", "--model", "m"])!.PrepackRows);
        Assert.Equal(1 << 20, OrtBenchOptions.Parse(["--prepack", "--prepack-rows", "1048576", "--onnx", "o", "--model", "m"])!.PrepackRows);
        Assert.Contains("--prepack", Assert.Throws<BenchInputException>(() => OrtBenchOptions.Parse(["--prepack-rows", "4096", "--onnx", "o", "--model", "m"])).Message);
        Assert.Contains("--prepack-rows", Assert.Throws<BenchInputException>(() => OrtBenchOptions.Parse(["--prepack", "--prepack-rows", "0", "--onnx", "o", "--model", "m"])).Message);
    }

    // Two runs in one profile (a warm-up and the measured one): only the last run's node kernels count, summed per
    // operator type; fences, session events and nodes outside the run are left out.
    [Fact]
    public void OrtProfile_TwoRuns_SumsTheLastRunsKernelsPerOpType()
    {
        var file = Path.Combine(Path.GetTempPath(), $"ortprofile-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """
            [
             {"cat":"Session","name":"model_run","ts":100,"dur":50,"args":{}},
             {"cat":"Node","name":"conv1_kernel_time","ts":110,"dur":30,"args":{"op_name":"Conv"}},
             {"cat":"Session","name":"model_run","ts":1000,"dur":400,"args":{}},
             {"cat":"Node","name":"conv1_fence_before","ts":1005,"dur":0,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"conv1_kernel_time","ts":1010,"dur":120,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"conv2_kernel_time","ts":1140,"dur":80,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"mm_kernel_time","ts":1230,"dur":150,"args":{"op_name":"MatMul"}},
             {"cat":"Node","name":"late_kernel_time","ts":2000,"dur":999,"args":{"op_name":"Softmax"}}
            ]
            """);
        try
        {
            var ops = OrtProfileSummary.LastRun(file);
            Assert.Equal([new OrtOpTime("Conv", 2, 200e-6), new OrtOpTime("MatMul", 1, 150e-6)], ops);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void OrtProfile_NoRunOrNotJson_OneLineNamingTheFile()
    {
        var file = Path.Combine(Path.GetTempPath(), $"ortprofile-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, """[{"cat":"Session","name":"session_initialization","ts":1,"dur":2}]""");
            Assert.Contains("no model_run", Assert.Throws<BenchInputException>(() => OrtProfileSummary.LastRun(file)).Message);
            File.WriteAllText(file, "[{");
            Assert.Contains(file, Assert.Throws<BenchInputException>(() => OrtProfileSummary.LastRun(file)).Message);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Parse_StagesAndEngine_ImageNeedsAllThreeNetworks()
    {
        var o = OrtBenchOptions.Parse(["--onnx", "o", "--ref", "r.safetensors", "--stages", "vae, te,vae", "--engine", "ort", "--pairs", "3", "--threads", "2"])!;
        Assert.Equal([SdStage.VaeDecode, SdStage.TextEncoder], o.Stages);
        Assert.Equal([SdStage.VaeDecode, SdStage.TextEncoder], o.Networks);
        Assert.False(o.RunsOurs);
        Assert.Equal((3, 2), (o.Pairs, o.Threads));
        var image = OrtBenchOptions.Parse(["--onnx", "o", "--model", "m", "--stages", "image"])!;
        Assert.Equal([SdStage.TextEncoder, SdStage.Unet, SdStage.VaeDecode], image.Networks);
    }

    [Theory]
    [InlineData(new[] { "--model", "m" }, "--onnx")]
    [InlineData(new[] { "--onnx", "o" }, "--model")]                                  // ours needs the folder
    [InlineData(new[] { "--onnx", "o", "--engine", "ort" }, "--model")]               // no --ref: the tokenizer comes from it
    [InlineData(new[] { "--onnx", "o", "--model", "m", "--pairs", "0" }, "--pairs")]
    [InlineData(new[] { "--onnx", "o", "--model", "m", "--threads", "two" }, "--threads")]
    [InlineData(new[] { "--onnx", "o", "--model", "m", "--stages", "te,clip" }, "clip")]
    [InlineData(new[] { "--onnx", "o", "--model", "m", "--engine", "torch" }, "torch")]
    [InlineData(new[] { "--onnx", "o", "--model", "m", "--warmup" }, "--warmup")]
    [InlineData(new[] { "--onnx", "--model", "m" }, "--onnx needs a value")]
    public void Parse_BadArguments_OneLineNamingTheArgument(string[] args, string fragment)
    {
        var e = Assert.Throws<BenchInputException>(() => OrtBenchOptions.Parse(args));
        Assert.Contains(fragment, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Parse_Help_ReturnsNull() => Assert.Null(OrtBenchOptions.Parse(["--onnx", "o", "--help"]));

    [Fact]
    public void Validate_NamesTheFirstMissingFolderOrFile()
    {
        var root = Directory.CreateTempSubdirectory("ortbench-").FullName;
        try
        {
            var onnx = Path.Combine(root, "onnx");
            var model = Path.Combine(root, "sd15");
            OrtBenchOptions Opts(params string[] extra) => OrtBenchOptions.Parse(["--onnx", onnx, "--model", model, .. extra])!;

            Assert.Contains(onnx, Assert.Throws<BenchInputException>(() => Opts().Validate()).Message);
            Directory.CreateDirectory(Path.Combine(onnx, "text_encoder"));
            File.WriteAllText(Path.Combine(onnx, "text_encoder", "model.onnx"), "");
            var e = Assert.Throws<BenchInputException>(() => Opts("--stages", "te,unet").Validate());
            Assert.Contains(Path.Combine(onnx, "unet", "model.onnx"), e.Message);

            Directory.CreateDirectory(model);
            e = Assert.Throws<BenchInputException>(() => Opts("--stages", "te").Validate());
            Assert.Contains("model_index.json", e.Message);
            File.WriteAllText(Path.Combine(model, "model_index.json"), "{}");
            Opts("--stages", "te").Validate();
            // our engine alone needs no ONNX files at all
            OrtBenchOptions.Parse(["--model", model, "--engine", "ours"])!.Validate();
            e = Assert.Throws<BenchInputException>(() => Opts("--stages", "te", "--ref", Path.Combine(root, "ref.safetensors")).Validate());
            Assert.Contains("ref.safetensors", e.Message);
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void Spread_MedianMinMax_EvenCountAveragesTheMiddleTwo()
    {
        Assert.Equal(new Spread(2, 1, 5), Spread.Of([5, 1, 2]));
        Assert.Equal(new Spread(2.5, 1, 4), Spread.Of([4, 1, 3, 2]));
        Assert.True(double.IsNaN(Spread.Of([]).Median));
    }

    [Fact]
    public void StageTimes_RatiosAreOursOverOrtPerCompletePair()
    {
        var t = new StageTimes();
        t.Ort.AddRange([2.0, 4.0, 1.0]);
        t.Ours.AddRange([3.0, 2.0]);
        Assert.Equal([1.5, 0.5], t.Ratios);
    }

    [Fact]
    public void Diff_MaxAbs_NaNForMissingMismatchedOrNonFinite()
    {
        Assert.Equal(0.5, Diff.MaxAbs([1f, -2f, 3f], [1.25f, -2.5f, 3f]));
        Assert.True(double.IsNaN(Diff.MaxAbs([1f], null)));
        Assert.True(double.IsNaN(Diff.MaxAbs([1f], [1f, 2f])));
        Assert.True(double.IsNaN(Diff.MaxAbs([1f, float.NaN], [1f, 2f])));
    }
}
