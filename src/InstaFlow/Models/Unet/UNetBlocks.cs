// The UNet's level blocks: CrossAttnDownBlock2D / DownBlock2D, CrossAttnUpBlock2D / UpBlock2D (one class, with or
// without attentions), and UNetMidBlock2DCrossAttn (resnet -> transformer -> resnet).
using InstaFlow.Models.Diffusers;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Unet;

public sealed class UNetBlock : Module
{
    public ResnetBlock2D[] Resnets { get; private set; } = Array.Empty<ResnetBlock2D>();
    public Transformer2DModel[]? Attentions { get; private set; }
    public Downsample2D? Downsampler { get; private set; }
    public Upsample2D? Upsampler { get; private set; }

    private UNetBlock() { }

    public static UNetBlock Down(UNet2DConditionConfig c, int inCh, int outCh, int temb, bool addDownsample, bool cross, int heads, int layers)
    {
        var b = new UNetBlock();
        int n = c.LayersPerBlock;
        var res = b.Child("resnets", new ModuleList());
        b.Resnets = Enumerable.Range(0, n).Select(j => res.Add(new ResnetBlock2D(j == 0 ? inCh : outCh, outCh, temb, c.NormNumGroups, c.NormEps))).ToArray();
        if (cross)
        {
            var att = b.Child("attentions", new ModuleList());
            b.Attentions = Enumerable.Range(0, n).Select(_ => att.Add(new Transformer2DModel(heads, outCh / heads, outCh, c.CrossAttentionDim, c.NormNumGroups, c.UseLinearProjection, layers))).ToArray();
        }
        if (addDownsample)
        {
            var ds = b.Child("downsamplers", new ModuleList());
            b.Downsampler = ds.Add(new Downsample2D(outCh, c.DownsamplePadding));
        }
        return b;
    }

    public static UNetBlock Up(UNet2DConditionConfig c, int inCh, int outCh, int prevOut, int temb, bool addUpsample, bool cross, int heads, int layers)
    {
        var b = new UNetBlock();
        int n = c.LayersPerBlock + 1;
        var res = b.Child("resnets", new ModuleList());
        b.Resnets = Enumerable.Range(0, n).Select(j =>
        {
            int skipCh = j == n - 1 ? inCh : outCh;
            int resIn = j == 0 ? prevOut : outCh;
            return res.Add(new ResnetBlock2D(resIn + skipCh, outCh, temb, c.NormNumGroups, c.NormEps));
        }).ToArray();
        if (cross)
        {
            var att = b.Child("attentions", new ModuleList());
            b.Attentions = Enumerable.Range(0, n).Select(_ => att.Add(new Transformer2DModel(heads, outCh / heads, outCh, c.CrossAttentionDim, c.NormNumGroups, c.UseLinearProjection, layers))).ToArray();
        }
        if (addUpsample)
        {
            var us = b.Child("upsamplers", new ModuleList());
            b.Upsampler = us.Add(new Upsample2D(outCh));
        }
        return b;
    }

    /// <summary>x: [B, Cin, H, W] -> [B, Cout, H', W']; pushes every resnet/attention output and the downsampled output.</summary>
    public Tensor ForwardDown(Tensor x, Tensor embAct, Tensor context, List<Tensor> skips, Action<string, Tensor>? hook, string name)
    {
        // x: [B, C, H, W]
        for (int j = 0; j < Resnets.Length; j++)
        {
            x = Resnets[j].Forward(x, embAct);
            if (j == 0) hook?.Invoke($"{name}.resnets.0", x);
            if (Attentions != null)
            {
                x = Attentions[j].Forward(x, context);
                if (j == 0) hook?.Invoke($"{name}.attentions.0.0", x);
            }
            skips.Add(x);
            hook?.Invoke($"{name}.1.{j}", x);
        }
        if (Downsampler != null)
        {
            x = Downsampler.Forward(x);
            skips.Add(x);
            hook?.Invoke($"{name}.1.{Resnets.Length}", x);
        }
        return x;
    }

    /// <summary>x: [B, Cprev, H, W], skips in push order; each resnet takes cat([x, last skip]) along channels.</summary>
    public Tensor ForwardUp(Tensor x, List<Tensor> skips, Tensor embAct, Tensor context, (int, int)? upsampleSize)
    {
        // x: [B, C, H, W]
        for (int j = 0; j < Resnets.Length; j++)
        {
            var skip = skips[skips.Count - 1 - j];
            x = Resnets[j].Forward(Ops.Concat(new[] { x, skip }, 1), embAct);
            if (Attentions != null) x = Attentions[j].Forward(x, context);
        }
        return Upsampler != null ? Upsampler.Forward(x, upsampleSize) : x;
    }
}

public sealed class UNetMidBlock2DCrossAttn : Module
{
    public readonly ResnetBlock2D[] Resnets;
    public readonly Transformer2DModel[] Attentions;

    public UNetMidBlock2DCrossAttn(UNet2DConditionConfig c, int channels, int temb, int heads, int layers)
    {
        var res = Child("resnets", new ModuleList());
        var att = Child("attentions", new ModuleList());
        Resnets = new[]
        {
            res.Add(new ResnetBlock2D(channels, channels, temb, c.NormNumGroups, c.NormEps, c.MidBlockScaleFactor)),
            res.Add(new ResnetBlock2D(channels, channels, temb, c.NormNumGroups, c.NormEps, c.MidBlockScaleFactor)),
        };
        Attentions = new[] { att.Add(new Transformer2DModel(heads, channels / heads, channels, c.CrossAttentionDim, c.NormNumGroups, c.UseLinearProjection, layers)) };
    }

    public Tensor Forward(Tensor x, Tensor embAct, Tensor context)
    {
        // x: [B, C, H, W]
        x = Resnets[0].Forward(x, embAct);
        x = Attentions[0].Forward(x, context);
        return Resnets[1].Forward(x, embAct);
    }
}
