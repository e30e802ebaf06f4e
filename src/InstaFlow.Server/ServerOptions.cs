// Settings of `instaflow serve` and the start-up checks on them: where to listen, the API key, the queue bound.
using System.Net;
using InstaFlow.Pipelines;

namespace InstaFlow.Server;

public sealed record ServerOptions
{
    public required string ModelDir { get; init; }
    public string? Variant { get; init; }
    /// <summary>The model with its single-file options (--config, --ema, --unet); when set it is loaded instead of ModelDir.</summary>
    public ModelSource? Source { get; init; }
    /// <summary>TAESD decoder and LoRA files applied after loading.</summary>
    public ModelAdditions Additions { get; init; } = new();
    /// <summary>An SDXL-Refiner folder: the page then offers Refine on each image (POST /api/refine).</summary>
    public string? RefinerDir { get; init; }
    /// <summary>An IP address, or "localhost" for the IPv4 loopback.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 lets the system pick a free port (tests read it back from InstaFlowServer.Address).</summary>
    public int Port { get; init; } = 7860;
    public string? ApiKey { get; init; }
    /// <summary>How many requests may wait while one generates; more get 429.</summary>
    public int MaxQueue { get; init; } = 8;
    /// <summary>Largest request body: an init, control or refine image travels in it as base64 (a PNG of up to 2048x2048).</summary>
    public long MaxRequestBodyBytes { get; init; } = 24L << 20;
    /// <summary>Warnings and errors of the web host on the console (the CLI turns this on; tests keep it quiet).</summary>
    public bool ConsoleLog { get; init; }

    /// <summary>The address to bind; throws InvalidInputException (one line, saying why) for settings the server refuses.</summary>
    public IPAddress Validate()
    {
        IPAddress ip;
        if (string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase)) ip = IPAddress.Loopback;
        else if (!IPAddress.TryParse(Host, out ip!))
            throw new InvalidInputException($"--host {Host} is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::)");
        if (Port is < 0 or > 65535) throw new InvalidInputException($"--port {Port} is not a port number (0 to 65535)");
        if (MaxQueue is < 0 or > 10_000) throw new InvalidInputException($"--max-queue {MaxQueue} must be between 0 and 10000");
        if (ApiKey is { } key && (key.Length < 8 || key.Any(char.IsWhiteSpace)))
            throw new InvalidInputException("--api-key must be at least 8 characters without spaces");
        if (!IPAddress.IsLoopback(ip) && string.IsNullOrEmpty(ApiKey))
            throw new InvalidInputException($"refusing to listen on {Host} without --api-key: anyone on the network could use the API; pass --api-key KEY or bind to 127.0.0.1");
        return ip;
    }
}
