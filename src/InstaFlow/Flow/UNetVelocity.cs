// The SD UNet as a velocity network: the condition is the text encoder's hidden states [B, T, D] and the network
// time (already mapped by the flow convention, e.g. 1000*(1-t)) goes in as the UNet's float timesteps.
using InstaFlow.Models.Unet;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Flow;

public sealed class UNetVelocity(UNet2DConditionModel unet) : IVelocityModel
{
    public UNet2DConditionModel Unet { get; } = unet;
    public Module Module => Unet;

    // x: [B, C, h, w], modelTime: [B], cond: [B, T, D]
    public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond) =>
        Unet.Forward(x, modelTime.ToArray(), cond ?? throw new ArgumentException("the UNet needs a text condition (encoder hidden states)"));
}
