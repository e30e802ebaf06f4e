// Scheduler schedules for every spacing (values worked out from the diffusers 0.21.4 formulas), the lenient config
// reader (-Infinity, unknown keys, class defaults) and one-line errors for settings these samplers do not implement.
using InstaFlow.Flow.Schedulers;
using InstaFlow.Models;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Flow;

public class SchedulerTests
{
    private static SchedulerConfig Sd15(string cls, string spacing) => SchedulerConfig.StableDiffusion15(cls) with { TimestepSpacing = spacing };

    [Theory]
    [InlineData(SchedulerConfig.Ddim, "leading", 5, new float[] { 801, 601, 401, 201, 1 })]
    [InlineData(SchedulerConfig.Ddim, "trailing", 5, new float[] { 999, 799, 599, 399, 199 })]
    [InlineData(SchedulerConfig.Ddim, "linspace", 5, new float[] { 999, 749, 500, 250, 0 })]
    [InlineData(SchedulerConfig.DpmSolverMultistep, "leading", 5, new float[] { 831, 665, 499, 333, 167 })]
    [InlineData(SchedulerConfig.DpmSolverMultistep, "linspace", 5, new float[] { 999, 799, 599, 400, 200 })]
    [InlineData(SchedulerConfig.DpmSolverMultistep, "trailing", 5, new float[] { 999, 799, 599, 399, 199 })]
    [InlineData(SchedulerConfig.EulerDiscrete, "leading", 5, new float[] { 801, 601, 401, 201, 1 })]
    [InlineData(SchedulerConfig.EulerDiscrete, "linspace", 5, new float[] { 999, 749.25f, 499.5f, 249.75f, 0 })]
    [InlineData(SchedulerConfig.EulerDiscrete, "trailing", 4, new float[] { 999, 749, 499, 249 })]
    public void Scheduler_Spacing_MatchesDiffusersTimesteps(string cls, string spacing, int steps, float[] expected)
    {
        var s = NoiseScheduler.Create(Sd15(cls, spacing));
        s.SetTimesteps(steps);
        Assert.Equal(expected, s.Timesteps);
    }

    [Fact]
    public void Scheduler_TwentyFiveLeadingSteps_UsesClassSpecificStride()
    {
        var dpm = NoiseScheduler.Create(Sd15(SchedulerConfig.DpmSolverMultistep, "leading"));
        dpm.SetTimesteps(25);
        Assert.Equal(Enumerable.Range(1, 25).Reverse().Select(i => (float)(i * 38 + 1)), dpm.Timesteps);
        var ddim = NoiseScheduler.Create(Sd15(SchedulerConfig.Ddim, "leading"));
        ddim.SetTimesteps(25);
        Assert.Equal(Enumerable.Range(0, 25).Reverse().Select(i => (float)(i * 40 + 1)), ddim.Timesteps);
    }

    [Fact]
    public void Scheduler_EulerLinspace_InitNoiseSigmaIsSigmaMax()
    {
        var lead = (EulerDiscreteScheduler)NoiseScheduler.Create(Sd15(SchedulerConfig.EulerDiscrete, "leading"));
        var lin = (EulerDiscreteScheduler)NoiseScheduler.Create(Sd15(SchedulerConfig.EulerDiscrete, "linspace"));
        lead.SetTimesteps(5); lin.SetTimesteps(5);
        float sigmaMax = MathF.Sqrt((1 - lin.AlphasCumprod[999]) / lin.AlphasCumprod[999]);
        Assert.Equal(sigmaMax, lin.InitNoiseSigma, 5);
        Assert.Equal(MathF.Sqrt(lead.Sigmas[0] * lead.Sigmas[0] + 1), lead.InitNoiseSigma, 5);
        Assert.Equal(0f, lin.Sigmas[^1]);
    }

    [Fact]
    public void SchedulerConfig_DpmConfigForDdim_TakesDdimDefaultsAndIgnoresUnknownKeys()
    {
        var json = """{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.21.4", "lambda_min_clipped": -Infinity, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "timestep_spacing": "leading", "some_future_key": [1, 2]}""";
        var dpm = SchedulerConfig.FromConfig(ConfigFile.Parse(json, "s.json"));
        Assert.Equal(double.NegativeInfinity, dpm.LambdaMinClipped);
        var ddim = SchedulerConfig.FromConfig(ConfigFile.Parse(json, "s.json"), SchedulerConfig.Ddim);
        Assert.Equal(SchedulerConfig.Ddim, ddim.ClassName);
        Assert.True(ddim.ClipSample);
        Assert.True(ddim.SetAlphaToOne);
        Assert.Equal("leading", ddim.TimestepSpacing);
    }

    [Theory]
    [InlineData("\"prediction_type\": \"x_prediction\"", "prediction_type", "x_prediction")]
    [InlineData("\"thresholding\": true", "thresholding", "true")]
    [InlineData("\"use_karras_sigmas\": true", "use_karras_sigmas", "true")]
    [InlineData("\"algorithm_type\": \"sde-dpmsolver++\"", "algorithm_type", "sde-dpmsolver++")]
    [InlineData("\"solver_order\": 3", "solver_order", "3")]
    [InlineData("\"beta_schedule\": \"squaredcos_cap_v2\"", "beta_schedule", "squaredcos_cap_v2")]
    [InlineData("\"timestep_spacing\": \"karras\"", "timestep_spacing", "karras")]
    public void SchedulerConfig_UnsupportedValue_ErrorNamesKeyAndValue(string entry, string key, string value)
    {
        var json = "{\"_class_name\": \"DPMSolverMultistepScheduler\", " + entry + "}";
        var e = Assert.Throws<NotSupportedException>(() => SchedulerConfig.FromConfig(ConfigFile.Parse(json, "sched.json")));
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains(value, e.Message);
        Assert.Contains("sched.json", e.Message);
    }

    /// <summary>v-prediction: one DDIM step to t = -1 (alpha 1) with the exact v of a known x0 returns x0.</summary>
    [Fact]
    public void Scheduler_VPredictionOfKnownSample_DdimRecoversIt()
    {
        var cfg = SchedulerConfig.StableDiffusion15(SchedulerConfig.Ddim) with { PredictionType = "v_prediction", SetAlphaToOne = true, TimestepSpacing = "trailing" };
        var s = NoiseScheduler.Create(cfg);
        s.SetTimesteps(1);
        using var scope = TensorScope.Begin();
        var x0 = TestUtil.Random(1, 1, 4, 4, 4);
        var noise = TestUtil.Random(2, 1, 4, 4, 4);
        int t = (int)s.Timesteps[0];
        float a = MathF.Sqrt(s.AlphasCumprod[t]), b = MathF.Sqrt(1 - s.AlphasCumprod[t]);
        var xt = Tensor.FromArray(x0.ToArray().Zip(noise.ToArray(), (x, n) => a * x + b * n).ToArray(), 1, 4, 4, 4);
        var v = Tensor.FromArray(x0.ToArray().Zip(noise.ToArray(), (x, n) => a * n - b * x).ToArray(), 1, 4, 4, 4);
        var prev = s.Step(v, 0, xt);
        TestUtil.AssertClose(x0, prev, 1e-4f, what: "x0 from v");
    }
}
