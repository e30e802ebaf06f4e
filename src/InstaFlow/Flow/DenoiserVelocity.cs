// A denoiser (the SD UNet, optionally with a ControlNet, or another backend) as a velocity network: the condition is
// the text encoder's hidden states [B, T, D] and the network time (already mapped by the flow convention, e.g.
// 1000*(1-t)) goes in as its float timesteps.
using InstaFlow.Models;
using InstaFlow.Tensors;

namespace InstaFlow.Flow;

public sealed class DenoiserVelocity(IDenoiser denoiser) : IVelocityModel
{
    public IDenoiser Denoiser { get; } = denoiser;

    // x: [B, C, h, w], modelTime: [B], cond: [B, T, D]
    public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond) =>
        Denoiser.Forward(x, modelTime.ToArray(), cond ?? throw new ArgumentException("the denoiser needs a text condition (encoder hidden states)"));
}
