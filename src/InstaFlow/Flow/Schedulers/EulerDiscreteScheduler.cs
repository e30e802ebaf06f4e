// Euler sampler of the probability-flow ODE in sigma space (k-diffusion style), as diffusers 0.21.4's
// EulerDiscreteScheduler with s_churn = 0: float timesteps, sigmas interpolated between training timesteps.
using InstaFlow.Tensors;

namespace InstaFlow.Flow.Schedulers;

public sealed class EulerDiscreteScheduler(SchedulerConfig config) : NoiseScheduler(config)
{
    /// <summary>sigma at each inference timestep plus a final 0 (length steps + 1), float32.</summary>
    public float[] Sigmas { get; private set; } = Array.Empty<float>();

    public override string ShortName => "euler";

    /// <summary>diffusers 0.21.4 scales by sqrt(sigma_max^2 + 1) only for "leading"; the others use sigma_max.</summary>
    public override float InitNoiseSigma
    {
        get
        {
            if (Sigmas.Length == 0) throw new InvalidOperationException("call SetTimesteps before InitNoiseSigma");
            float max = Sigmas.Max();
            return Config.TimestepSpacing == "leading" ? MathF.Sqrt(max * max + 1f) : max;
        }
    }

    public override void SetTimesteps(int steps)
    {
        CheckSteps(steps);
        var t = Spacing(Config.TimestepSpacing, Config.NumTrainTimesteps, Config.NumTrainTimesteps, steps, steps, steps, Config.StepsOffset);
        // Timesteps are float32 in diffusers, and the sigmas are interpolated at those float32 values.
        Timesteps = t.Select(v => (float)(Config.TimestepSpacing == "linspace" ? v : Math.Round(v, MidpointRounding.ToEven))).ToArray();
        int n = AlphasCumprod.Length;
        var train = new float[n];
        for (int i = 0; i < n; i++) train[i] = MathF.Sqrt((1f - AlphasCumprod[i]) / AlphasCumprod[i]);
        var sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++)
        {
            double x = Timesteps[i];
            if (x < 0 || x > n - 1)
                throw new InvalidInputException($"Euler schedule of {steps} steps with {Config.TimestepSpacing} spacing and steps_offset {Config.StepsOffset} reaches timestep {x}, outside 0..{n - 1}");
            int j = (int)Math.Floor(x);
            // numpy.interp in double on the float32 table
            sigmas[i] = j >= n - 1 ? train[n - 1] : (float)(train[j] + ((double)train[j + 1] - train[j]) * (x - j));
        }
        Sigmas = sigmas;
    }

    public override Tensor ScaleModelInput(Tensor sample, int stepIndex)
    {
        CheckStepIndex(stepIndex);
        float s = Sigmas[stepIndex];
        float div = MathF.Sqrt(s * s + 1f);
        var r = Tensor.Empty(sample.ShapeArray());
        var xs = sample.Span; var rs = r.Span;
        for (int i = 0; i < rs.Length; i++) rs[i] = xs[i] / div;
        return r;
    }

    public override Tensor Step(Tensor modelOutput, int stepIndex, Tensor sample)
    {
        CheckStepIndex(stepIndex);
        CheckSameShape(modelOutput, sample);
        float sigma = Sigmas[stepIndex];
        float dt = Sigmas[stepIndex + 1] - sigma;
        float vScale = -sigma / MathF.Sqrt(sigma * sigma + 1f), vShift = sigma * sigma + 1f;
        var r = Tensor.Empty(sample.ShapeArray());
        var xs = sample.Span; var os = modelOutput.Span; var rs = r.Span;
        string kind = Config.PredictionType;
        for (int i = 0; i < rs.Length; i++)
        {
            float x0 = kind switch
            {
                "epsilon" => xs[i] - sigma * os[i],
                "v_prediction" => os[i] * vScale + xs[i] / vShift,
                _ => os[i],
            };
            float derivative = (xs[i] - x0) / sigma;
            rs[i] = xs[i] + derivative * dt;
        }
        return r;
    }
}
