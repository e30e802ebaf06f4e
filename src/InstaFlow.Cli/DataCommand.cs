// `instaflow data twemoji --out DIR`: builds the captioned Twemoji dataset used to train the default model.
using System.CommandLine;
using InstaFlow.Training.Data;

namespace InstaFlow.Cli;

public static class DataCommand
{
    public static Command Create()
    {
        var outDir = new Option<string>("--out") { Description = "output folder (images/ and captions.jsonl)", Required = true };
        var package = new Option<string?>("--package") { Description = $"use a local {TwemojiDataset.Package} .tgz instead of running npm pack" };
        var twemoji = new Command("twemoji", $"Fetch {TwemojiDataset.Package} with npm and build 64x64 RGB images with captions (Twemoji art: CC-BY 4.0)");
        twemoji.Options.Add(outDir);
        twemoji.Options.Add(package);
        twemoji.SetAction(r =>
        {
            try
            {
                ProgressDisplay.Run("twemoji images", p => TwemojiDataset.Build(r.GetValue(outDir)!, r.GetValue(package), p.Log, p));
            }
            catch (InvalidOperationException e)
            {
                throw new UserException(e.Message);
            }
            return 0;
        });
        var data = new Command("data", "Build training datasets");
        data.Subcommands.Add(twemoji);
        return data;
    }
}
