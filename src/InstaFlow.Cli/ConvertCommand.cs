// `instaflow convert`: any model we load (SD-1.x single file, .ckpt, .bin folder, with --unet or a fine-tune merge)
// written as a diffusers folder of safetensors.
using System.CommandLine;
using System.Diagnostics;
using InstaFlow.IO;
using InstaFlow.Pipelines;

namespace InstaFlow.Cli;

public static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("model") { Description = "a diffusers folder or an SD-1.x single-file checkpoint (.safetensors, .ckpt, .pt)" };
        var output = new Option<string>("--out") { Description = "the diffusers folder to write", Required = true };
        var half = new Option<bool>("--half") { Description = "store the weights as float16 (default float32: the same weights as loaded)" };
        var config = new Option<string?>("--config") { Description = "diffusers folder whose configs and tokenizer describe a single-file model (default: SD-1.5's, built in)" };
        var ema = new Option<bool>("--ema") { Description = "use the checkpoint's EMA UNet weights (model_ema.*)" };
        var unet = new Option<string?>("--unet") { Description = "replace the UNet weights with this diffusers-named state dict (.pt, .bin, .safetensors)" };
        var merge = new MergeOptions();
        var cmd = new Command("convert", "Write a model (single-file checkpoint, .bin folder, merged fine-tune) as a diffusers folder of safetensors") { input };
        foreach (var o in new Option[] { output, half, config, ema, unet }) cmd.Options.Add(o);
        merge.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var outDir = Path.GetFullPath(r.GetValue(output)!);
            var source = new ModelSource(r.GetValue(input)!) { ConfigDir = r.GetValue(config), Ema = r.GetValue(ema), UnetFile = r.GetValue(unet) };
            if (Path.GetFullPath(source.Path).TrimEnd('/') == outDir.TrimEnd('/')) throw new UserException("--out must be another folder than the model itself");
            var parent = Path.GetDirectoryName(outDir);
            if (parent == null || !Directory.Exists(parent)) throw new UserException($"output folder's parent does not exist: {parent}");
            var clock = Stopwatch.StartNew();
            using var model = SdComponents.Open(source);
            merge.ApplyTo(new ModelAdditions(), r, source.ConfigDir).ApplyTo(model, CliIO.Err.WriteLine);
            ModelConverter.WriteDiffusers(model, source, outDir, r.GetValue(half) ? SafeTensorDType.F16 : SafeTensorDType.F32);
            CliIO.Err.WriteLine($"converted {model.Description} in {clock.Elapsed.TotalSeconds:F1} s");
            CliIO.Out.WriteLine(outDir);
            return 0;
        });
        return cmd;
    }
}
