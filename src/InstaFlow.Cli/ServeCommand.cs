// `instaflow serve`: parses the options and runs the web UI / REST API server (InstaFlow.Server) until Ctrl+C.
using System.CommandLine;
using InstaFlow.Server;

namespace InstaFlow.Cli;

public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "diffusers model folder; default: the embedded model" };
        var variant = new Option<string?>("--variant") { Description = "weights variant, e.g. fp16" };
        var host = new Option<string>("--host") { Description = "address to listen on; anything but loopback needs --api-key", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 7860 };
        var apiKey = new Option<string?>("--api-key") { Description = "key that API calls must send (Authorization: Bearer KEY or X-API-Key)" };
        var maxQueue = new Option<int>("--max-queue") { Description = "requests that may wait while one generates; more get 429", DefaultValueFactory = _ => 8 };
        var taesd = new Option<string?>("--taesd") { Description = "decode with this TAESD folder instead of the VAE" };
        var lora = new Option<string[]>("--lora") { Description = "LoRA file merged into the UNet and text encoder; repeat --lora for more" };
        var loraScale = new Option<float>("--lora-scale") { Description = "strength of the LoRA(s)", DefaultValueFactory = _ => 1f };
        var controlnet = new Option<string?>("--controlnet") { Description = "diffusers ControlNetModel folder: requests may then send a control_image" };

        var maxWork = new Option<long>("--max-work") { Description = $"largest request in pixel-steps, width x height x batch x steps (default {ServerOptions.DefaultMaxWorkPixelSteps}: e.g. one 1024x1024 image in 3 steps, 2048x2048 refused)", DefaultValueFactory = _ => ServerOptions.DefaultMaxWorkPixelSteps };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host header names the API answers besides loopback names and --host (DNS-rebinding guard); repeat for more" };

        var cmd = new Command("serve", "Serve the web UI and REST API (POST /api/generate)");
        foreach (var o in new Option[] { model, variant, host, port, apiKey, maxQueue, taesd, lora, loraScale, controlnet, maxWork, allowedHosts }) cmd.Options.Add(o);
        cmd.SetAction(async (r, cancellation) =>
        {
            var options = new ServerOptions
            {
                ModelDir = Pipelines.ModelLocator.Resolve(r.GetValue(model)), Variant = r.GetValue(variant), Host = r.GetValue(host)!,
                Port = r.GetValue(port), ApiKey = r.GetValue(apiKey), MaxQueue = r.GetValue(maxQueue), ConsoleLog = true,
                MaxWorkPixelSteps = r.GetValue(maxWork), AllowedHosts = r.GetValue(allowedHosts) ?? [],
                Additions = new Pipelines.ModelAdditions
                {
                    TaesdDir = r.GetValue(taesd), LoraFiles = r.GetValue(lora) ?? [], LoraScale = r.GetValue(loraScale), ControlNetDir = r.GetValue(controlnet),
                },
            };
            await using var server = await InstaFlowServer.StartAsync(options, cancellation);
            CliIO.Err.WriteLine($"InstaFlow web UI: {server.Address} (API: POST {server.Address}api/generate); Ctrl+C stops");
            await server.WaitForShutdownAsync(cancellation);
            return 0;
        });
        return cmd;
    }
}
