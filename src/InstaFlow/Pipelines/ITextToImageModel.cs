// What a text-to-image recipe holds: its networks behind the small component interfaces, a description for metadata,
// and the one-shot release of networks a run is done with. SdComponents is our implementation.
using InstaFlow.Models;
using InstaFlow.Models.Unet;

namespace InstaFlow.Pipelines;

public interface ITextToImageModel
{
    /// <summary>The model's name with its additions (e.g. "sd15 (taesd, lora x.safetensors x0.7)"): what metadata records.</summary>
    string Description { get; }
    ITextEncoder PromptEncoder { get; }
    IDenoiser Denoiser { get; }
    ILatentDecoder Decoder { get; }
    ILatentEncoder LatentEncoder { get; }
    /// <summary>A ControlNet attached to the model (null when none): requests with a control image run through it.</summary>
    ControlNetModel? ControlNet { get; }
    /// <summary>Steps and guidance this model is meant to be sampled with.</summary>
    ModelDefaults Defaults { get; }

    /// <summary>True once ReleaseTextEncoder or ReleaseDenoiser ran: the model cannot generate again.</summary>
    bool DenoisersReleased { get; }
    void ReleaseTextEncoder();
    void ReleaseDenoiser();
}

/// <summary>The output size rule, in one place: positive multiples of 8 and of the decoder's factor, at most 4096.</summary>
public static class ImageSize
{
    public const int MaxSide = 4096;

    /// <summary>The model's own size: the denoiser's sample_size times the decoder's factor.</summary>
    public static int Default(ITextToImageModel model) => model.Denoiser.SampleSize * model.Decoder.ScaleFactor;

    /// <summary>Pixels per side must be a multiple of this.</summary>
    public static int Multiple(ITextToImageModel model) => Lcm(8, model.Decoder.ScaleFactor);

    private static int Lcm(int a, int b) { int x = a, y = b; while (y != 0) (x, y) = (y, x % y); return a / x * b; }

    /// <summary>Checks a side length; the message names the option or field.</summary>
    public static void Check(string name, int value, int multiple = 8, int max = MaxSide)
    {
        if (value <= 0 || value % 8 != 0 || value % multiple != 0 || value > max)
            throw new InvalidInputException($"{name} {value} is not usable: it must be a positive multiple of {Math.Max(8, multiple)}, at most {max}");
    }

    /// <summary>The requested size (default: the model's), checked.</summary>
    public static (int Width, int Height) Resolve(ITextToImageModel model, int? width, int? height)
    {
        int w = width ?? Default(model), h = height ?? Default(model), m = Multiple(model);
        Check("width", w, m);
        Check("height", h, m);
        return (w, h);
    }
}
