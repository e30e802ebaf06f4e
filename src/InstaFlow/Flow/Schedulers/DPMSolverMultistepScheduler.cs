// DPM-Solver++ (and DPM-Solver) multistep, orders 1-2, midpoint or Heun, as diffusers 0.21.4's
// DPMSolverMultistepScheduler: "DPM++ 2M" with lower_order_final for the SD-1.5 config.
using InstaFlow.Tensors;

namespace InstaFlow.Flow.Schedulers;

public sealed class DPMSolverMultistepScheduler : NoiseScheduler
{
    private readonly float[] _alpha, _sigma, _lambda;
    // Converted output (x0 for ++, eps otherwise) of the previous step; the second-order update extrapolates from it.
    private float[]? _prevOutput;
    private int _lowerOrderNums;

    public DPMSolverMultistepScheduler(SchedulerConfig config) : base(config)
    {
        int n = AlphasCumprod.Length;
        _alpha = new float[n]; _sigma = new float[n]; _lambda = new float[n];
        for (int i = 0; i < n; i++)
        {
            _alpha[i] = MathF.Sqrt(AlphasCumprod[i]);
            _sigma[i] = MathF.Sqrt(1f - AlphasCumprod[i]);
            _lambda[i] = MathF.Log(_alpha[i]) - MathF.Log(_sigma[i]);
        }
    }

    public override string ShortName => "dpm++";

    public override void SetTimesteps(int steps)
    {
        CheckSteps(steps);
        // Timesteps whose log-SNR is below lambda_min_clipped are cut from the top of the range.
        int clipped = 0;
        for (int i = _lambda.Length - 1; i >= 0 && _lambda[i] < Config.LambdaMinClipped; i--) clipped++;
        int last = Config.NumTrainTimesteps - clipped;
        // 0.21.4 spaces n+1 points over the range and drops the last (t = 0) for "leading" and "linspace".
        double[] raw = Config.TimestepSpacing == "trailing"
            ? Spacing("trailing", last, Config.NumTrainTimesteps, steps, steps, steps, 0)
            : Spacing(Config.TimestepSpacing, last, Config.NumTrainTimesteps, steps, steps + 1, steps + 1, Config.StepsOffset)[..^1];
        var ts = raw.Select(v => Math.Round(v, MidpointRounding.ToEven));
        // Rounding can repeat a timestep for large step counts; diffusers keeps the first of each.
        Timesteps = ts.Distinct().Select(v => (float)v).ToArray();
        foreach (var v in Timesteps)
            if (v < 0 || v >= Config.NumTrainTimesteps)
                throw new InvalidInputException($"DPM-Solver schedule of {steps} steps with {Config.TimestepSpacing} spacing and steps_offset {Config.StepsOffset} reaches timestep {v}, outside 0..{Config.NumTrainTimesteps - 1}");
        _prevOutput = null;
        _lowerOrderNums = 0;
    }

    public override Tensor Step(Tensor modelOutput, int stepIndex, Tensor sample)
    {
        CheckStepIndex(stepIndex);
        CheckSameShape(modelOutput, sample);
        if (stepIndex > 0 && _prevOutput == null) throw new InvalidOperationException("DPM-Solver steps must be taken in order from step 0");
        int n = Timesteps.Length;
        int s0 = (int)Timesteps[stepIndex];
        int t = stepIndex == n - 1 ? 0 : (int)Timesteps[stepIndex + 1];
        bool lowerOrderFinal = stepIndex == n - 1 && Config.LowerOrderFinal && n < 15;
        bool plus = Config.AlgorithmType == "dpmsolver++";

        var m0 = Convert(modelOutput, s0, sample, plus);
        float h = _lambda[t] - _lambda[s0];
        // x_t = cs*sample + c0*D0 (+ c1*D1): DPM-Solver++ integrates the data prediction, DPM-Solver the noise.
        float cs = plus ? _sigma[t] / _sigma[s0] : _alpha[t] / _alpha[s0];
        float phi = plus ? _alpha[t] * (MathF.Exp(-h) - 1f) : _sigma[t] * (MathF.Exp(h) - 1f);
        float c0 = -phi;

        var r = Tensor.Empty(sample.ShapeArray());
        var xs = sample.Span; var rs = r.Span;
        if (Config.SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal)
        {
            for (int i = 0; i < rs.Length; i++) rs[i] = cs * xs[i] + c0 * m0[i];
        }
        else
        {
            int s1 = (int)Timesteps[stepIndex - 1];
            float r0 = (_lambda[s0] - _lambda[s1]) / h;
            float inv = 1f / r0;
            float c1 = Config.SolverType == "midpoint" ? -0.5f * phi
                : plus ? _alpha[t] * ((MathF.Exp(-h) - 1f) / h + 1f)
                : -(_sigma[t] * ((MathF.Exp(h) - 1f) / h - 1f));
            var m1 = _prevOutput!;
            for (int i = 0; i < rs.Length; i++) rs[i] = cs * xs[i] + c0 * m0[i] + c1 * (inv * (m0[i] - m1[i]));
        }
        _prevOutput = m0;
        if (_lowerOrderNums < Config.SolverOrder) _lowerOrderNums++;
        return r;
    }

    /// <summary>The model output as the quantity the solver integrates: x0 (dpmsolver++) or eps (dpmsolver).</summary>
    private float[] Convert(Tensor modelOutput, int t, Tensor sample, bool plus)
    {
        var (a, b, c, d) = PredictionCoefficients(AlphasCumprod[t]);
        if (plus && Config.PredictionType == "epsilon")
        {
            // Same operation order as diffusers: (sample - sigma_t * eps) / alpha_t.
            float al = _alpha[t], sg = _sigma[t];
            var o = modelOutput.Span; var x = sample.Span;
            var res = new float[o.Length];
            for (int i = 0; i < res.Length; i++) res[i] = (x[i] - sg * o[i]) / al;
            return res;
        }
        var os = modelOutput.Span; var xs = sample.Span;
        var r = new float[os.Length];
        for (int i = 0; i < r.Length; i++) r[i] = plus ? a * xs[i] + b * os[i] : c * xs[i] + d * os[i];
        return r;
    }
}
