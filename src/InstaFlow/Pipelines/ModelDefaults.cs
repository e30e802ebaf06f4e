// How many Euler steps and how much guidance a model is meant to be sampled with: InstaFlow and our distilled models
// are one-step generators; 2-Rectified Flow is a few-step model with light guidance (InstaFlow's README: 25 steps,
// guidance 1.5, optimal 1.0-2.0). Read from model_index.json when the folder says, else recognized by name.
using InstaFlow.Models;

namespace InstaFlow.Pipelines;

public sealed record ModelDefaults(int Steps, float Guidance, string Source)
{
    public static readonly ModelDefaults OneStep = new(1, 0f, "one-step default");

    /// <summary>The folder's "_instaflow_defaults", else a known checkpoint by name, else one step without guidance.</summary>
    public static ModelDefaults For(DiffusersFolder folder)
    {
        if (folder.Defaults is var (steps, guidance)) return new ModelDefaults(steps, guidance, "model_index.json");
        // Hugging Face cache folders are named models--XCLiu--2_rectified_flow_from_sd_1_5/snapshots/<rev>
        var path = folder.Root.Replace('\\', '/').ToLowerInvariant();
        if (path.Contains("2_rectified_flow") || path.Contains("2-rectified-flow")) return new ModelDefaults(25, 1.5f, "2-Rectified Flow (InstaFlow's README)");
        return OneStep;
    }
}
