// Generation parameters stored in PNG text chunks: a `parameters` entry in the common SD-tool layout plus one
// key per field, so that images can be reproduced and read by other tools. The one metadata writer.
using System.Globalization;

namespace InstaFlow.Pipelines;

public sealed record GenerationMetadata(string Prompt, string? NegativePrompt, int Steps, float Guidance, ulong Seed, int Width, int Height, string Model,
    string Sampler = "Rectified Flow Euler")
{
    /// <summary>The ControlNet conditioning scale, when the image was made with a control image.</summary>
    public float? ControlScale { get; init; }

    public IReadOnlyDictionary<string, string> ToPngText()
    {
        var inv = CultureInfo.InvariantCulture;
        var neg = NegativePrompt ?? "";
        var control = ControlScale is float c ? string.Format(inv, ", ControlNet scale: {0}", c) : "";
        var parameters = Prompt + "\n" + (neg.Length > 0 ? $"Negative prompt: {neg}\n" : "") +
            string.Format(inv, "Steps: {0}, Sampler: {6}, CFG scale: {1}, Seed: {2}, Size: {3}x{4}, Model: {5}", Steps, Guidance, Seed, Width, Height, Model, Sampler) + control;
        var text = new Dictionary<string, string>
        {
            ["parameters"] = parameters,
            ["prompt"] = Prompt,
            ["negative_prompt"] = neg,
            ["steps"] = Steps.ToString(inv),
            ["guidance"] = Guidance.ToString(inv),
            ["seed"] = Seed.ToString(inv),
            ["model"] = Model,
            ["sampler"] = Sampler,
            ["software"] = "InstaFlow.NET",
        };
        if (ControlScale is float s) text["control_scale"] = s.ToString(inv);
        return text;
    }
}
