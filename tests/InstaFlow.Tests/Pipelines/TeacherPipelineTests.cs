// The SD-1.5 teacher (StableDiffusionPipeline) against diffusers 0.21.4 goldens for DDIM, DPM++ 2M (leading and
// linspace) and Euler: schedules, every per-step model input, guided eps and latents, and the decoded images.
using InstaFlow.Flow.Schedulers;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Pipelines;

public class TeacherPipelineTests
{
    private static readonly string[] Prompts = { "a photo of a cat", "an astronaut riding a horse on mars, oil painting" };
    private const float Atol = 1e-3f, Rtol = 1e-4f;

    internal static string TeacherDir => Path.Combine(TestUtil.Fixtures, "teacher");

    [Theory]
    [InlineData("teacher_ddim_leading_5")]
    [InlineData("teacher_dpmpp2m_leading_5")]
    [InlineData("teacher_dpmpp2m_linspace_5")]
    [InlineData("teacher_euler_leading_5")]
    public void Teacher_Golden_MatchesDiffusersStepByStep(string name)
    {
        using var g = SafeTensors.Open(Path.Combine(TeacherDir, name + ".safetensors"));
        var scheduler = NoiseScheduler.Create(SchedulerConfig.Load(Path.Combine(TeacherDir, name + ".scheduler_config.json")));
        var pipe = new StableDiffusionPipeline(RectifiedFlowPipelineTests.Model, scheduler);
        var cap = new Dictionary<string, Tensor>();
        pipe.Hook = (k, t) => cap[k] = t.ClonePersistent();
        using var scope = TensorScope.Begin();
        var res = pipe.Generate(new GenerationRequest { Prompts = Prompts, Steps = 5, Guidance = 6f, InitLatents = g.ReadF32("noise") });

        var expectedT = g.Info("timesteps").DType == SafeTensorDType.I64 ? g.ReadI64("timesteps").Select(v => (float)v).ToArray() : g.ReadF32("timesteps").ToArray();
        Assert.Equal(expectedT, scheduler.Timesteps);
        TestUtil.AssertClose(g.ReadF32("alphas_cumprod").Span, scheduler.AlphasCumprod, 1e-6f, what: "alphas_cumprod");
        if (scheduler is EulerDiscreteScheduler euler) TestUtil.AssertClose(g.ReadF32("sigmas").Span, euler.Sigmas, 1e-6f, what: "sigmas");
        TestUtil.AssertClose(g.ReadF32("init_noise_sigma").Span, new[] { scheduler.InitNoiseSigma }, 1e-6f, what: "init_noise_sigma");
        TestUtil.AssertClose(g.ReadF32("prompt_embeds"), cap["prompt_embeds"], 2e-4f, what: "prompt_embeds");
        TestUtil.AssertClose(g.ReadF32("init_latents"), cap["init_latents"], Atol, Rtol, "init_latents");
        for (int i = 0; i < 5; i++)
        {
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.model_input"), cap[$"step{i}.model_input"], Atol, Rtol, $"{name} step{i}.model_input");
            TestUtil.AssertClose(g.ReadF32($"debug.step{i}.eps"), cap[$"step{i}.eps"], Atol, Rtol, $"{name} step{i}.eps");
            TestUtil.AssertClose(g.ReadF32($"step{i}.latents"), cap[$"step{i}.latents"], Atol, Rtol, $"{name} step{i}.latents");
        }
        TestUtil.AssertClose(g.ReadF32("final_latents"), res.FinalLatents, Atol, Rtol, "final_latents");
        TestUtil.AssertClose(g.ReadF32("image_raw"), cap["image_raw"], 2e-4f, what: "image_raw");
        var u8 = g.ReadU8("image_u8_hwc");
        int per = u8.Length / Prompts.Length;
        for (int b = 0; b < Prompts.Length; b++) RectifiedFlowPipelineTests.AssertImagesClose(u8[(b * per)..((b + 1) * per)], res.ImagesHwc[b], $"{name} image {b}");
        res.FinalLatents.Dispose();
        foreach (var t in cap.Values) t.Dispose();
    }
}
