// Finds the model a run uses: an explicit folder, else the embedded default model, looked for next to the program
// (where `dotnet publish` and the build copy it) and then in the folders above it (a source checkout).
namespace InstaFlow.Pipelines;

public static class ModelLocator
{
    /// <summary>The embedded default model's folder, relative to the repository root and to the program's folder.</summary>
    public const string DefaultModelFolder = "models/twemoji-instaflow";

    /// <summary>The given folder, or the embedded default model when it is null.</summary>
    public static string Resolve(string? model) => model ?? FindDefault()
        ?? throw new FileNotFoundException($"no model given and the default model ({DefaultModelFolder}) was not found next to the program ({AppContext.BaseDirectory}) or above it; pass a diffusers folder (--model DIR)");

    /// <summary>The embedded default model's folder, or null when this installation has none.</summary>
    public static string? FindDefault()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(ModelLocator).Assembly.Location) })
        {
            for (var dir = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, DefaultModelFolder);
                if (File.Exists(Path.Combine(candidate, "model_index.json"))) return candidate;
            }
        }
        return null;
    }
}
