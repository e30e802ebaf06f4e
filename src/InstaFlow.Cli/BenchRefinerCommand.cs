// `instaflow bench refiner --write-folder DIR`: writes the full-size SDXL-Refiner (real configs, random F16 weights)
// so that `instaflow refine --model DIR` can be timed and measured at full size without a download.
using System.CommandLine;
using System.Globalization;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

public static class BenchRefinerCommand
{
    public static Command Create()
    {
        var folder = new Option<string>("--write-folder") { Description = "the diffusers folder to write (~6.2 GB of F16 weights)", Required = true };
        var cmd = new Command("refiner", "Write the full-size SDXL-Refiner-1.0 with random F16 weights, to time `refine` at full size");
        cmd.Options.Add(folder);
        cmd.SetAction(r =>
        {
            var dir = r.GetValue(folder)!;
            if (File.Exists(dir)) throw new UserException($"--write-folder {dir} is a file; give a folder to write the refiner into");
            var (bytes, seconds) = RefinerBench.WriteRandomFolder(dir, msg => CliIO.Err.WriteLine(msg));
            CliIO.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0}: {1:F2} GB SDXL-Refiner folder written in {2:F1} s", dir, bytes / 1e9, seconds));
            return 0;
        });
        return cmd;
    }
}
