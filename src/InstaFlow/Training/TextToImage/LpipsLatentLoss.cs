// InstaFlow's second distillation phase: LPIPS between the VAE decodings of the student's one-step latents and of
// the teacher's latents. The frozen decoder is differentiated through for the student; the teacher side is decoded
// once without a tape.
using InstaFlow.Models.Lpips;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Training.TextToImage;

public sealed class LpipsLatentLoss(AutoencoderKL vae, Lpips lpips)
{
    // predicted, target: [B, C, h, w] latents times scaling_factor (the flow's space) -> mean LPIPS over the batch
    public Tensor Loss(Tensor predicted, Tensor target)
    {
        if (!ShapeUtil.SameShape(predicted.Shape, target.Shape))
            throw new ArgumentException($"LPIPS loss: predicted {predicted.Describe()} and target {target.Describe()} differ in shape");
        float inv = 1f / vae.Config.ScalingFactor;
        // 1. the teacher's images, no gradient
        Tensor targetImages;
        using (GradMode.NoGrad()) targetImages = vae.Decode(Ops.MulScalar(target, inv));
        // 2. the student's images, through the frozen decoder
        var images = vae.Decode(Ops.MulScalar(predicted, inv));
        // 3. LPIPS per pair, averaged
        return Ops.MeanAll(lpips.Forward(images, targetImages).Value);
    }
}
