// Deterministic DDIM (eta = 0) as diffusers 0.21.4's DDIMScheduler: integer timesteps, x0 from the model output,
// then the sample at the previous timestep t - num_train_timesteps // n.
using InstaFlow.Tensors;

namespace InstaFlow.Flow.Schedulers;

public sealed class DDIMScheduler(SchedulerConfig config) : NoiseScheduler(config)
{
    private int _steps;

    public override string ShortName => "ddim";

    public override void SetTimesteps(int steps)
    {
        CheckSteps(steps);
        _steps = steps;
        var t = Spacing(Config.TimestepSpacing, Config.NumTrainTimesteps, Config.NumTrainTimesteps, steps, steps, steps, Config.StepsOffset);
        Timesteps = t.Select(v => (float)Math.Round(v, MidpointRounding.ToEven)).ToArray();
        foreach (var v in Timesteps)
            if (v < 0 || v >= Config.NumTrainTimesteps)
                throw new InvalidInputException($"DDIM schedule of {steps} steps with {Config.TimestepSpacing} spacing and steps_offset {Config.StepsOffset} reaches timestep {v}, outside 0..{Config.NumTrainTimesteps - 1}");
    }

    public override Tensor Step(Tensor modelOutput, int stepIndex, Tensor sample)
    {
        CheckStepIndex(stepIndex);
        CheckSameShape(modelOutput, sample);
        int t = (int)Timesteps[stepIndex];
        // diffusers steps back by the "leading" stride whatever the spacing, so mirror that rather than using the next entry.
        int prev = t - Config.NumTrainTimesteps / _steps;
        float alphaProd = AlphasCumprod[t];
        float alphaPrev = prev >= 0 ? AlphasCumprod[prev] : Config.SetAlphaToOne ? 1f : AlphasCumprod[0];
        var (a, b, c, d) = PredictionCoefficients(alphaProd);
        float sqrtPrev = MathF.Sqrt(alphaPrev), dir = MathF.Sqrt(1f - alphaPrev);

        var r = Tensor.Empty(sample.ShapeArray());
        var xs = sample.Span; var os = modelOutput.Span; var rs = r.Span;
        bool clip = Config.ClipSample;
        float range = Config.ClipSampleRange;
        for (int i = 0; i < rs.Length; i++)
        {
            float x0 = a * xs[i] + b * os[i];
            float eps = c * xs[i] + d * os[i];
            // Clipping changes x0 only; diffusers keeps the unclipped eps (use_clipped_model_output = false).
            if (clip) x0 = Math.Clamp(x0, -range, range);
            rs[i] = sqrtPrev * x0 + dir * eps;
        }
        return r;
    }
}
