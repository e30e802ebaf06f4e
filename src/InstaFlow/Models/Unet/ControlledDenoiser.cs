// The UNet with a ControlNet beside it (InstaFlow's pipeline_rf_ctrl.py): every call first runs the ControlNet on the
// same sample, timesteps and context plus the control image, then the UNet with its residuals added.
using InstaFlow.Tensors;

namespace InstaFlow.Models.Unet;

public sealed class ControlledDenoiser : IDenoiser
{
    private readonly UNet2DConditionModel _unet;
    private readonly ControlNetModel _controlNet;
    private readonly Tensor _image;
    private readonly float _scale;

    /// <param name="unet">The UNet whose every call gets the residuals.</param>
    /// <param name="controlNet">The ControlNet that computes them.</param>
    /// <param name="image">The control image [1 or B, 3, H, W] in [0, 1]; a batch-1 image broadcasts over the batch.</param>
    /// <param name="scale">controlnet_conditioning_scale: multiplies every residual.</param>
    public ControlledDenoiser(UNet2DConditionModel unet, ControlNetModel controlNet, Tensor image, float scale)
    {
        if (!float.IsFinite(scale)) throw new InvalidInputException($"the ControlNet scale must be a finite number, got {scale}");
        if (image.Rank != 4 || image.Dim(1) != 3) throw new ArgumentException($"the control image must be [B, 3, H, W], got {image.Describe()}");
        _unet = unet; _controlNet = controlNet; _image = image; _scale = scale;
    }

    /// <summary>Receives each call's residuals as down_block_res_samples.{j} and mid_block_res_sample (golden tests).</summary>
    public Action<string, Tensor>? Hook { get; set; }

    public int LatentChannels => _unet.Config.InChannels;
    public int SampleSize => _unet.Config.SampleSize;

    public Tensor Forward(Tensor sample, float[] timesteps, Tensor context)
    {
        var residuals = _controlNet.Forward(sample, timesteps, context, _image, _scale);
        for (int j = 0; j < residuals.Down.Count; j++) Hook?.Invoke($"down_block_res_samples.{j}", residuals.Down[j]);
        Hook?.Invoke("mid_block_res_sample", residuals.Mid);
        return _unet.Forward(sample, timesteps, context, residuals);
    }
}
