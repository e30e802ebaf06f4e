// `instaflow serve`: parses the options and runs the web UI / REST API server (InstaFlow.Server) until Ctrl+C.
using System.CommandLine;
using InstaFlow.Server;

namespace InstaFlow.Cli;

public static class ServeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var merge = new MergeOptions();
        var variant = new Option<string?>("--variant") { Description = "weights variant, e.g. fp16" };
        var host = new Option<string>("--host") { Description = "address to listen on; anything but loopback needs --api-key", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 7860 };
        var apiKey = new Option<string?>("--api-key") { Description = "key that API calls must send (Authorization: Bearer KEY or X-API-Key)" };
        var maxQueue = new Option<int>("--max-queue") { Description = "requests that may wait while one generates; more get 429", DefaultValueFactory = _ => 8 };
        var taesd = new Option<string?>("--taesd") { Description = "decode with this TAESD folder instead of the VAE" };
        var lora = new Option<string[]>("--lora") { Description = "LoRA file merged into the UNet and text encoder; repeat --lora for more" };
        var loraScale = new Option<float>("--lora-scale") { Description = "strength of the LoRA(s)", DefaultValueFactory = _ => 1f };
        var controlnet = new Option<string?>("--controlnet") { Description = "diffusers ControlNetModel folder: requests may then send a control_image" };

        var refiner = new Option<string?>("--refiner") { Description = "SDXL-Refiner folder: the page offers Refine on each image (POST /api/refine)" };
        var maxWork = new Option<long>("--max-work") { Description = $"largest request in pixel-steps, width x height x batch x (steps + 1) (default {ServerOptions.DefaultMaxWorkPixelSteps}: two 512x512 images in 25 steps)", DefaultValueFactory = _ => ServerOptions.DefaultMaxWorkPixelSteps };
        var maxPixels = new Option<long>("--max-pixels") { Description = $"largest image in pixels (default {ServerOptions.DefaultMaxImagePixels}: 1024x1024; 2048x2048 refused)", DefaultValueFactory = _ => ServerOptions.DefaultMaxImagePixels };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host header names the API answers besides loopback names and --host (DNS-rebinding guard); repeat for more" };

        var prepack = new Option<bool>("--prepack") { Description = "keep the weights packed after first use: faster steps for ~4 GB more memory (SD-1.5)" };
        var cmd = new Command("serve", "Serve the web UI and REST API (POST /api/generate)");
        foreach (var o in new Option[] { variant, host, port, apiKey, maxQueue, taesd, lora, loraScale, controlnet, refiner, maxWork, maxPixels, allowedHosts, prepack }) cmd.Options.Add(o);
        model.AddTo(cmd);
        merge.AddTo(cmd);
        cmd.SetAction(async (r, cancellation) =>
        {
            var source = model.Source(r, r.GetValue(variant));
            var options = new ServerOptions
            {
                ModelDir = source.Path, Source = source, Variant = r.GetValue(variant), Host = r.GetValue(host)!,
                Port = r.GetValue(port), ApiKey = r.GetValue(apiKey), MaxQueue = r.GetValue(maxQueue), ConsoleLog = true, RefinerDir = r.GetValue(refiner),
                PackWeightsOnce = r.GetValue(prepack), MaxWorkPixelSteps = r.GetValue(maxWork), MaxImagePixels = r.GetValue(maxPixels), AllowedHosts = r.GetValue(allowedHosts) ?? [],
                Additions = merge.ApplyTo(new Pipelines.ModelAdditions
                {
                    TaesdDir = r.GetValue(taesd), LoraFiles = r.GetValue(lora) ?? [], LoraScale = r.GetValue(loraScale), ControlNetDir = r.GetValue(controlnet),
                }, r, source.ConfigDir),
            };
            await using var server = await InstaFlowServer.StartAsync(options, cancellation);
            CliIO.Err.WriteLine($"InstaFlow web UI: {server.Address} (API: POST {server.Address}api/generate); Ctrl+C stops");
            await server.WaitForShutdownAsync(cancellation);
            return 0;
        });
        return cmd;
    }
}
