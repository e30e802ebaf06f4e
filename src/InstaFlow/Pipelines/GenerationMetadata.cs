// Generation parameters stored in PNG text chunks: a `parameters` entry in the common SD-tool layout plus one
// key per field, so that images can be reproduced and read by other tools.
using System.Globalization;

namespace InstaFlow.Pipelines;

public sealed record GenerationMetadata(string Prompt, string? NegativePrompt, int Steps, float Guidance, ulong Seed, int Width, int Height, string Model,
    string Sampler = "Rectified Flow Euler")
{
    public IReadOnlyDictionary<string, string> ToPngText()
    {
        var inv = CultureInfo.InvariantCulture;
        var neg = NegativePrompt ?? "";
        var parameters = Prompt + "\n" + (neg.Length > 0 ? $"Negative prompt: {neg}\n" : "") +
            string.Format(inv, "Steps: {0}, Sampler: {6}, CFG scale: {1}, Seed: {2}, Size: {3}x{4}, Model: {5}", Steps, Guidance, Seed, Width, Height, Model, Sampler);
        return new Dictionary<string, string>
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
    }
}
