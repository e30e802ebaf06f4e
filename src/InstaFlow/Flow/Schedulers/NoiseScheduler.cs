// Shared base of the SD epsilon-prediction samplers (diffusers 0.21.4 semantics): the scheduler_config.json record,
// the float32 beta/alphas_cumprod tables, timestep spacings, and the factory that picks the sampler class.
using InstaFlow.Models;
using InstaFlow.Tensors;

namespace InstaFlow.Flow.Schedulers;

/// <summary>
/// The keys of a diffusers scheduler_config.json that these samplers honour. Missing keys take the defaults of the
/// chosen class (as diffusers' from_config does), so a DPM config reused for DDIM gets DDIM's clip_sample = true.
/// </summary>
public sealed record SchedulerConfig
{
    public const string Ddim = "DDIMScheduler";
    public const string DpmSolverMultistep = "DPMSolverMultistepScheduler";
    public const string EulerDiscrete = "EulerDiscreteScheduler";

    public required string ClassName { get; init; }
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public string BetaSchedule { get; init; } = "linear";
    public string PredictionType { get; init; } = "epsilon";
    public required string TimestepSpacing { get; init; }
    public int StepsOffset { get; init; }
    // DDIM
    public bool ClipSample { get; init; } = true;
    public float ClipSampleRange { get; init; } = 1f;
    public bool SetAlphaToOne { get; init; } = true;
    // DPM-Solver
    public int SolverOrder { get; init; } = 2;
    public string AlgorithmType { get; init; } = "dpmsolver++";
    public string SolverType { get; init; } = "midpoint";
    public bool LowerOrderFinal { get; init; } = true;
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;

    public static readonly string[] Classes = { DpmSolverMultistep, Ddim, EulerDiscrete };

    /// <summary>Reads a scheduler_config.json; className overrides its _class_name (e.g. a DPM config driving DDIM).</summary>
    public static SchedulerConfig Load(string path, string? className = null) => FromConfig(ConfigFile.Load(path), className);

    public static SchedulerConfig FromConfig(ConfigFile c, string? className = null)
    {
        var cls = className ?? c.String("_class_name", null)
            ?? throw new InvalidInputException($"{c.Path}: no _class_name; choose the sampler explicitly");
        c.Require("_class_name", Classes.Contains(cls), cls, string.Join(", ", Classes));
        // Features these samplers do not implement: refuse rather than silently sample something else.
        c.Require("thresholding", !c.Bool("thresholding", false), "true", "false");
        c.Require("use_karras_sigmas", !c.Bool("use_karras_sigmas", false), "true", "false");
        c.Require("rescale_betas_zero_snr", !c.Bool("rescale_betas_zero_snr", false), "true", "false");
        c.Require("trained_betas", !c.Has("trained_betas"), "a list", "null (betas from beta_start/beta_end)");
        var variance = c.String("variance_type", null);
        c.Require("variance_type", variance is null, variance ?? "", "null");
        var interp = c.String("interpolation_type", "linear")!;
        c.Require("interpolation_type", interp == "linear", interp, "linear");

        var cfg = new SchedulerConfig
        {
            ClassName = cls,
            NumTrainTimesteps = c.Int("num_train_timesteps", 1000),
            BetaStart = c.Double("beta_start", 0.0001),
            BetaEnd = c.Double("beta_end", 0.02),
            BetaSchedule = c.String("beta_schedule", "linear")!,
            PredictionType = c.String("prediction_type", "epsilon")!,
            TimestepSpacing = c.String("timestep_spacing", cls == Ddim ? "leading" : "linspace")!,
            StepsOffset = c.Int("steps_offset", 0),
            ClipSample = c.Bool("clip_sample", true),
            ClipSampleRange = c.Float("clip_sample_range", 1f),
            SetAlphaToOne = c.Bool("set_alpha_to_one", true),
            SolverOrder = c.Int("solver_order", 2),
            AlgorithmType = c.String("algorithm_type", "dpmsolver++")!,
            SolverType = c.String("solver_type", "midpoint")!,
            LowerOrderFinal = c.Bool("lower_order_final", true),
            LambdaMinClipped = c.Double("lambda_min_clipped", double.NegativeInfinity),
        };
        c.Require("beta_schedule", cfg.BetaSchedule is "scaled_linear" or "linear", cfg.BetaSchedule, "scaled_linear, linear");
        c.Require("prediction_type", cfg.PredictionType is "epsilon" or "v_prediction" or "sample", cfg.PredictionType, "epsilon, v_prediction, sample");
        c.Require("timestep_spacing", cfg.TimestepSpacing is "leading" or "linspace" or "trailing", cfg.TimestepSpacing, "leading, linspace, trailing");
        c.Require("num_train_timesteps", cfg.NumTrainTimesteps is >= 2 and <= 100_000, cfg.NumTrainTimesteps.ToString(), "2..100000");
        if (cls == DpmSolverMultistep)
        {
            c.Require("algorithm_type", cfg.AlgorithmType is "dpmsolver++" or "dpmsolver", cfg.AlgorithmType, "dpmsolver++, dpmsolver");
            c.Require("solver_order", cfg.SolverOrder is 1 or 2, cfg.SolverOrder.ToString(), "1, 2");
            c.Require("solver_type", cfg.SolverType is "midpoint" or "heun", cfg.SolverType, "midpoint, heun");
        }
        return cfg;
    }

    /// <summary>The SD-1.5 values (scaled_linear 0.00085..0.012, steps_offset 1, "leading") for the given class.</summary>
    public static SchedulerConfig StableDiffusion15(string className) => new()
    {
        ClassName = className, BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = "scaled_linear",
        TimestepSpacing = "leading", StepsOffset = 1, ClipSample = false, SetAlphaToOne = false,
    };
}

/// <summary>
/// A sampler over the discrete training timesteps. Usage as in diffusers: SetTimesteps(n); latents = noise *
/// InitNoiseSigma; for i in 0..n-1: x = ScaleModelInput(latents, i); eps = unet(x, Timesteps[i]); latents = Step(eps, i, latents).
/// Steps must be taken in order (the multistep solver remembers earlier outputs).
/// </summary>
public abstract class NoiseScheduler
{
    protected NoiseScheduler(SchedulerConfig config)
    {
        Config = config;
        AlphasCumprod = ComputeAlphasCumprod(config);
    }

    public SchedulerConfig Config { get; }

    /// <summary>cumprod(1 - betas) over the training timesteps, float32 like torch.</summary>
    public float[] AlphasCumprod { get; }

    /// <summary>The timesteps of the current schedule, largest first (integers for DDIM/DPM, floats for Euler).</summary>
    public float[] Timesteps { get; protected set; } = Array.Empty<float>();

    /// <summary>Factor applied to unit-variance noise to get the initial latents.</summary>
    public virtual float InitNoiseSigma => 1f;

    /// <summary>Short name for metadata and logs (dpm++, ddim, euler).</summary>
    public abstract string ShortName { get; }

    public abstract void SetTimesteps(int steps);

    public virtual Tensor ScaleModelInput(Tensor sample, int stepIndex) => sample;

    /// <summary>Advances the sample from Timesteps[stepIndex] to the next timestep given the model output there.</summary>
    public abstract Tensor Step(Tensor modelOutput, int stepIndex, Tensor sample);

    public static NoiseScheduler Create(SchedulerConfig config) => config.ClassName switch
    {
        SchedulerConfig.Ddim => new DDIMScheduler(config),
        SchedulerConfig.DpmSolverMultistep => new DPMSolverMultistepScheduler(config),
        SchedulerConfig.EulerDiscrete => new EulerDiscreteScheduler(config),
        _ => throw new NotSupportedException($"unsupported scheduler class {config.ClassName} (supported: {string.Join(", ", SchedulerConfig.Classes)})"),
    };

    /// <summary>Maps the CLI names dpm++/ddim/euler to diffusers class names.</summary>
    public static string ClassForShortName(string name) => name switch
    {
        "dpm++" => SchedulerConfig.DpmSolverMultistep,
        "ddim" => SchedulerConfig.Ddim,
        "euler" => SchedulerConfig.EulerDiscrete,
        _ => throw new InvalidInputException($"unknown scheduler '{name}' (choose dpm++, ddim or euler)"),
    };

    protected void CheckSteps(int steps)
    {
        if (steps < 1 || steps > Config.NumTrainTimesteps)
            throw new InvalidInputException($"steps must be between 1 and num_train_timesteps ({Config.NumTrainTimesteps}), got {steps}");
    }

    protected void CheckStepIndex(int stepIndex)
    {
        if (stepIndex < 0 || stepIndex >= Timesteps.Length)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), $"step {stepIndex} is outside the {Timesteps.Length}-step schedule (call SetTimesteps first)");
    }

    private static float[] ComputeAlphasCumprod(SchedulerConfig c)
    {
        int n = c.NumTrainTimesteps;
        float[] betas = c.BetaSchedule == "scaled_linear"
            ? TorchLinspace((float)Math.Sqrt(c.BetaStart), (float)Math.Sqrt(c.BetaEnd), n).Select(b => b * b).ToArray()
            : TorchLinspace((float)c.BetaStart, (float)c.BetaEnd, n);
        // torch's CPU cumprod accumulates in double and rounds each partial product to float.
        var acp = new float[n];
        double p = 1;
        for (int i = 0; i < n; i++) { p *= 1f - betas[i]; acp[i] = (float)p; }
        return acp;
    }

    /// <summary>torch.linspace in float32: the first half counts up from start, the second half down from end.</summary>
    private static float[] TorchLinspace(float start, float end, int n)
    {
        var r = new float[n];
        float step = (end - start) / (n - 1);
        int half = n / 2;
        for (int i = 0; i < n; i++) r[i] = i < half ? start + step * i : end - step * (n - 1 - i);
        return r;
    }

    /// <summary>
    /// Spacing of n inference timesteps over the training range (Table 2 of "Common Diffusion Noise Schedules and
    /// Sample Steps are Flawed"), before integer rounding: "leading" uses step_ratio = range // divisor,
    /// "linspace" numpy.linspace(0, range-1, count), "trailing" numpy.arange(range, 0, -range/n) - 1.
    /// count/divisor let DPM-Solver ask for n+1 points and drop the last, as diffusers 0.21.4 does. "linspace" values
    /// are not rounded here: Euler keeps them fractional, DDIM/DPM round half to even.
    /// </summary>
    protected static double[] Spacing(string spacing, int range, int trainTimesteps, int n, int count, int divisor, int stepsOffset)
    {
        switch (spacing)
        {
            case "leading":
            {
                int ratio = range / divisor;
                return Enumerable.Range(0, count).Reverse().Select(i => (double)(i * ratio) + stepsOffset).ToArray();
            }
            case "linspace":
            {
                var r = new double[count];
                double stop = range - 1;
                double step = count > 1 ? stop / (count - 1) : 0;
                for (int i = 0; i < count; i++) r[i] = i == count - 1 && count > 1 ? stop : i * step;
                Array.Reverse(r);
                return r;
            }
            default:
            {
                // numpy.arange's length is ceil((stop - start) / step), evaluated in double.
                double step = (double)trainTimesteps / n;
                int len = (int)Math.Ceiling((0.0 - range) / -step);
                return Enumerable.Range(0, len).Select(i => Math.Round(range + i * -step, MidpointRounding.ToEven) - 1).ToArray();
            }
        }
    }

    /// <summary>x0 and eps from the model output, by prediction type (DDIM's formulas with float32 table values).</summary>
    protected (float A, float B, float C, float D) PredictionCoefficients(float alphaProd)
    {
        // pred_x0 = A*sample + B*out, pred_eps = C*sample + D*out
        float sa = MathF.Sqrt(alphaProd), sb = MathF.Sqrt(1f - alphaProd);
        return Config.PredictionType switch
        {
            "epsilon" => (1f / sa, -sb / sa, 0f, 1f),
            "v_prediction" => (sa, -sb, sb, sa),
            _ => (0f, 1f, 1f / sb, -sa / sb),
        };
    }

    protected static void CheckSameShape(Tensor modelOutput, Tensor sample)
    {
        if (!ShapeUtil.SameShape(modelOutput.Shape, sample.Shape))
            throw new ArgumentException($"model output {modelOutput.Describe()} does not match sample {sample.Describe()}");
    }
}

/// <summary>
/// Which scheduler samples a teacher, as diffusers' Class.from_config(pipe.scheduler.config) decides: the chosen class
/// (or the one the model's scheduler_config.json names, DPM-Solver++ when it names none we have) reads that file and
/// takes its own defaults for missing keys; without any file, the SD-1.5 values.
/// </summary>
public static class SchedulerResolver
{
    /// <param name="modelDir">The diffusers folder whose scheduler/scheduler_config.json is read by default.</param>
    /// <param name="shortName">dpm++, ddim or euler; null for the class in the config.</param>
    /// <param name="configFile">A scheduler_config.json to read instead of the model's.</param>
    /// <param name="note">Told when the config names a class that is not used.</param>
    public static NoiseScheduler Resolve(string modelDir, string? shortName = null, string? configFile = null, Action<string>? note = null)
    {
        var file = configFile ?? Path.Combine(modelDir, "scheduler", "scheduler_config.json");
        bool haveFile = File.Exists(file);
        if (configFile != null && !haveFile) throw new FileNotFoundException($"scheduler config not found: {file}", file);
        string? cls = shortName is string s ? NoiseScheduler.ClassForShortName(s) : null;
        if (!haveFile) return NoiseScheduler.Create(SchedulerConfig.StableDiffusion15(cls ?? SchedulerConfig.DpmSolverMultistep));
        if (cls == null)
        {
            var named = Models.ConfigFile.Load(file).String("_class_name", null);
            cls = named != null && SchedulerConfig.Classes.Contains(named) ? named : SchedulerConfig.DpmSolverMultistep;
            if (named != cls) note?.Invoke($"{file} names {named ?? "no class"}; sampling with {cls} and its values");
        }
        return NoiseScheduler.Create(SchedulerConfig.Load(file, cls));
    }
}
