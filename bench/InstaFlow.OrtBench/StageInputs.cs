// The inputs both engines get, and the reference outputs to check them against: from the ort-kit's reference file
// (the diffusers run the ONNX graphs were exported from) or, without one, deterministic stand-ins.
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors.Random;

namespace InstaFlow.OrtBench;

public sealed class StageInputs
{
    public static readonly int[] IdsShape = [1, 77];
    public static readonly int[] EmbShape = [1, 77, 768];
    public static readonly int[] LatentShape = [1, 4, 64, 64];
    public static readonly int[] ImageShape = [1, 3, 512, 512];

    /// <summary>The prompt tokenized when no reference file gives the ids.</summary>
    public const string DefaultPrompt = "a watercolor painting of a lighthouse at dawn";

    public required int[] Ids { get; init; }
    public required float[] InitLatents { get; init; }
    /// <summary>The UNet's time for InstaFlow's one step: 1000 (flow time 0, FlowConvention.InstaFlow).</summary>
    public required float Timestep { get; init; }
    /// <summary>The UNet stage's encoder hidden states (the reference text encoder's output, else seeded noise).</summary>
    public required float[] PromptEmbeds { get; init; }
    /// <summary>The VAE stage's input: final latents / scaling_factor, as the exported decoder graph takes it.</summary>
    public required float[] VaeLatents { get; init; }
    public required float ScalingFactor { get; init; }
    public required string Source { get; init; }

    // Reference outputs (diffusers 0.21.4 / torch fp32) when a reference file was given.
    public float[]? RefPromptEmbeds { get; init; }
    public float[]? RefVelocity { get; init; }
    public float[]? RefImage { get; init; }

    public float[]? Reference(SdStage stage) => stage switch
    {
        SdStage.TextEncoder => RefPromptEmbeds,
        SdStage.Unet => RefVelocity,
        _ => RefImage,
    };

    public static StageInputs Load(OrtBenchOptions o)
    {
        float sf = o.ModelDir != null ? AutoencoderKLConfig.Load(Path.Combine(o.ModelDir, "vae", "config.json")).ScalingFactor : 0.18215f;
        // InstaFlow's single step starts at flow time 0 (noise); the pipeline hands the UNet this time.
        float t = FlowConvention.InstaFlow.ModelTime(0.0);
        return o.RefFile != null ? FromReference(o.RefFile, sf, t) : Deterministic(o.ModelDir!, sf, t);
    }

    private static StageInputs FromReference(string file, float sf, float expectedTime)
    {
        using var f = SafeTensors.Open(file);
        float[] F32(string name, int[] shape)
        {
            if (!f.Contains(name))
                throw new BenchInputException($"{file}: no tensor \"{name}\"; --ref must be the ort-kit's artifacts/ref/ref.safetensors (fullsize_sd15.py reference)");
            var info = f.Info(name);
            if (!info.Shape.SequenceEqual(shape))
                throw new BenchInputException($"{file}: \"{name}\" is [{string.Join(",", info.Shape)}], expected [{string.Join(",", shape)}] (the full-size SD-1.5 reference at 512x512)");
            using var tensor = f.ReadF32(name);
            return tensor.ToArray();
        }
        if (!f.Contains("input_ids"))
            throw new BenchInputException($"{file}: no tensor \"input_ids\"; --ref must be the ort-kit's artifacts/ref/ref.safetensors (fullsize_sd15.py reference)");
        var idsInfo = f.Info("input_ids");
        if (!idsInfo.Shape.SequenceEqual(IdsShape))
            throw new BenchInputException($"{file}: \"input_ids\" is [{string.Join(",", idsInfo.Shape)}], expected [1,77]");
        int[] ids = idsInfo.DType switch
        {
            SafeTensorDType.I64 => f.ReadI64("input_ids").Select(x => checked((int)x)).ToArray(),
            SafeTensorDType.I32 => f.ReadI32("input_ids"),
            _ => throw new BenchInputException($"{file}: \"input_ids\" is {SafeTensorDTypes.Name(idsInfo.DType)}, expected I64 or I32"),
        };
        float t = F32("timestep", [1])[0];
        if (t != expectedTime)
            throw new BenchInputException($"{file}: timestep is {t}, but InstaFlow's one step runs the UNet at {expectedTime}; use a reference made for one InstaFlow step");
        var final = F32("final_latents", LatentShape);
        return new StageInputs
        {
            Ids = ids, InitLatents = F32("init_latents", LatentShape), Timestep = t, PromptEmbeds = F32("prompt_embeds", EmbShape),
            VaeLatents = final.Select(x => x / sf).ToArray(), ScalingFactor = sf, Source = file,
            RefPromptEmbeds = F32("prompt_embeds", EmbShape), RefVelocity = F32("v_pred", LatentShape), RefImage = F32("image_raw", ImageShape),
        };
    }

    private static StageInputs Deterministic(string modelDir, float sf, float t)
    {
        var ids = ClipTokenizer.FromDirectory(Path.Combine(modelDir, "tokenizer")).Tokenize(DefaultPrompt).Ids;
        // torch.randn with these seeds gives the same values (TorchGenerator reproduces torch's CPU generator).
        var lat0 = Randn(1234, LatentShape);
        return new StageInputs
        {
            Ids = ids, InitLatents = lat0, Timestep = t, PromptEmbeds = Randn(1235, EmbShape),
            VaeLatents = lat0.Select(x => x / sf).ToArray(), ScalingFactor = sf,
            Source = $"deterministic: prompt \"{DefaultPrompt}\", init latents randn(seed 1234), UNet context randn(seed 1235), VAE input init latents / {sf}",
        };
    }

    private static float[] Randn(ulong seed, int[] shape)
    {
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        new TorchGenerator(seed).FillNormal(data);
        return data;
    }
}
