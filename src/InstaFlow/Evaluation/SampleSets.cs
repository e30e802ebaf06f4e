// Sample sets for looking at a model: a grid of prompts x seeds (each row's prompt printed under it) and the Twemoji
// classifier's verdict on each sample. Images are generated as `generate --seed 0 --batch N` makes them.
using InstaFlow.IO;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;

namespace InstaFlow.Evaluation;

/// <summary>One classified sample: the prompt, its seed, the class the classifier chose and its probability.</summary>
public sealed record PromptVerdict(string Prompt, ulong Seed, string Class, float Probability);

public static class SampleSets
{
    /// <summary>
    /// Rows of images per prompt, seeds 0 .. seeds-1 (image i of the prompt's run), with the model's steps and guidance
    /// unless given.
    /// </summary>
    public static (int Width, int Height, byte[][][] Rows) Generate(ITextToImageModel model, IReadOnlyList<string> prompts, int seeds, int? steps = null, float? guidance = null)
    {
        if (prompts.Count == 0) throw new InvalidInputException("no prompts given");
        if (seeds < 1) throw new InvalidInputException($"the number of seeds must be at least 1, got {seeds}");
        var pipe = new RectifiedFlowPipeline(model);
        var rows = new byte[prompts.Count][][];
        int w = 0, h = 0;
        for (int y = 0; y < prompts.Count; y++)
        {
            using var scope = TensorScope.Begin();
            var res = pipe.GenerateImages(new GenerationRequest
            {
                Prompts = [prompts[y]], Seed = 0, Steps = steps ?? model.Defaults.Steps, Guidance = guidance ?? model.Defaults.Guidance,
            }, seeds);
            res.FinalLatents.Dispose();
            (w, h, rows[y]) = (res.Width, res.Height, res.ImagesHwc);
        }
        return (w, h, rows);
    }

    /// <summary>A grid PNG's pixels: one row per prompt, printed under it, cells upscaled by scale.</summary>
    public static (int Width, int Height, byte[] Rgb) Grid(ITextToImageModel model, IReadOnlyList<string> prompts, int seeds, int scale, int? steps = null, float? guidance = null)
    {
        var (w, h, rows) = Generate(model, prompts, seeds, steps, guidance);
        return ImageGrid.Compose(rows, w, h, scale, prompts);
    }

    /// <summary>The classifier's verdict on every sample of <see cref="Generate"/>.</summary>
    public static IReadOnlyList<PromptVerdict> Classify(ITextToImageModel model, TwemojiClassifier classifier, IReadOnlyList<string> prompts, int seeds,
        int? steps = null, float? guidance = null)
    {
        var (w, h, rows) = Generate(model, prompts, seeds, steps, guidance);
        var verdicts = new List<PromptVerdict>();
        for (int y = 0; y < rows.Length; y++)
        {
            using var scope = TensorScope.Begin();
            var classes = classifier.Classify(ImageTensors.ToTensorSigned(rows[y], w, h));
            for (int i = 0; i < classes.Length; i++)
                verdicts.Add(new PromptVerdict(prompts[y], SeedPolicy.ImageSeed(0, i), classifier.Classes[classes[i].Class], classes[i].Probability));
        }
        return verdicts;
    }
}
