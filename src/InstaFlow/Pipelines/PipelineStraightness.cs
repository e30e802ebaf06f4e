// Straightness of a text-to-image flow per prompt (Liu et al.'s S(Z) and the x1-extrapolation errors along the
// trajectory), from the same noise, prompt encoding, guidance and field `generate` uses: how far a checkpoint is from
// one-step generation, measured on the real model rather than a toy.
using InstaFlow.Flow;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Pipelines;

/// <summary>S = integral E||(Z1 - Z0) - v(Z_t, t)||^2 dt, and E||Z_t + (1 - t) v(Z_t, t) - Z1||^2 at each step's start.</summary>
public sealed record StraightnessRow(string Prompt, double Straightness, double TransportCost, double[] ExtrapolationErrors);

public static class PipelineStraightness
{
    public static IReadOnlyList<StraightnessRow> Measure(ITextToImageModel model, IReadOnlyList<string> prompts, int steps, float guidance, string? negative, ulong seed)
    {
        if (steps < 2) throw new InvalidInputException($"straightness needs at least 2 Euler steps (one step has no trajectory to bend), got {steps}");
        using var _ = GradMode.NoGrad();
        var pipe = new RectifiedFlowPipeline(model);
        var rows = new List<StraightnessRow>();
        int size = ImageSize.Default(model);
        foreach (var prompt in prompts)
        {
            using var scope = TensorScope.Begin();
            var req = new GenerationRequest { Prompts = [prompt], NegativePrompts = negative == null ? null : [negative], Steps = steps, Guidance = guidance, Seed = seed };
            var v = RectifiedFlowPipeline.Field(model.Denoiser, pipe.Encode(req.Prompts, req.NegativePrompts, guidance), guidance);
            var x0 = PipelineSteps.InitialNoise(model, req, size, size);
            var traj = new EulerSampler(steps).Sample(v, x0, keepTrajectory: true).Trajectory!;
            rows.Add(new StraightnessRow(prompt, Straightness.Estimate(v, traj), Straightness.TransportCost(x0, traj.States[^1]),
                Straightness.ExtrapolationErrors(v, traj)));
        }
        return rows;
    }
}
