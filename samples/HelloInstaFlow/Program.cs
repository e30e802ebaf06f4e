// HelloInstaFlow: loads a diffusers model folder with the InstaFlow.Core package and writes one PNG.
// Usage: dotnet run -- [model folder] [prompt] [output.png]   (default model: the repo's models/twemoji-instaflow)
using InstaFlow.IO;
using InstaFlow.Pipelines;

string modelDir = args.Length > 0 ? args[0] : FindRepoModel("models/twemoji-instaflow");
string prompt = args.Length > 1 ? args[1] : "red apple";
string output = args.Length > 2 ? args[2] : "hello-instaflow.png";

using var model = SdComponents.Load(modelDir);
var pipeline = new RectifiedFlowPipeline(model);
// The model's own steps and guidance (one Euler step for a distilled InstaFlow model).
var result = pipeline.Generate(new GenerationRequest
{
    Prompts = [prompt], Seed = 0, Steps = model.Defaults.Steps, Guidance = model.Defaults.Guidance,
});
result.FinalLatents.Dispose(); // the latents are the caller's to free; only the pixels are needed here
Png.Write(output, result.Width, result.Height, 3, result.ImagesHwc[0], result.Metadata[0].ToPngText());
Console.WriteLine($"{output}: {result.Width}x{result.Height} \"{prompt}\" from {modelDir}");

// The sample may run from bin/ or from anywhere in the repo: look upwards for the embedded model.
static string FindRepoModel(string relative)
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, relative, "model_index.json"))) return Path.Combine(dir.FullName, relative);
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, relative, "model_index.json"))) return Path.Combine(dir.FullName, relative);
    throw new DirectoryNotFoundException($"{relative} not found above the current or the program's folder; pass a model folder");
}
