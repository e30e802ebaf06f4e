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
    /// <summary>
    /// Keep the weights packed after their first use in calls of few rows (<see cref="SdComponents.PackWeightsOnce"/>):
    /// faster steps, about 4 bytes per packed weight more memory (~4 GB for SD-1.5).
    /// </summary>
    public bool PackWeightsOnce { get; init; }
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

    /// <summary>
    /// The most work one request may ask for, in pixel-steps (width x height x batch x (steps + 1 for the decode)). The
    /// default admits two 512x512 images of 2-Rectified Flow's 25 steps, eight 512x512 images in 4 steps or one
    /// 1024x1024 image in 12 steps.
    /// </summary>
    public long MaxWorkPixelSteps { get; init; } = DefaultMaxWorkPixelSteps;
    public const long DefaultMaxWorkPixelSteps = 512 * 512 * 2 * 26;

    /// <summary>
    /// Pixels one image may have. The default (1024x1024) refuses a 2048x2048 image: that one took the only
    /// generation slot for 13.5 minutes and 3.1 GB.
    /// </summary>
    public long MaxImagePixels { get; init; } = DefaultMaxImagePixels;
    public const long DefaultMaxImagePixels = 1024 * 1024;

    /// <summary>Host header names accepted besides the loopback names and Host itself (DNS-rebinding guard).</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>Warnings and errors of the web host on the console (the CLI turns this on; tests keep it quiet).</summary>
    public bool ConsoleLog { get; init; }

    /// <summary>The address to bind; throws InvalidInputException (one line, saying why) for settings the server refuses.</summary>
    public IPAddress Validate()
    {
        IPAddress ip;
        if (string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase)) ip = IPAddress.Loopback;
        else if (!IPAddress.TryParse(Host, out ip!))
            throw new InvalidInputException($"--host {Host} is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::)");
        // ::ffff:a.b.c.d is the IPv4 address a.b.c.d: bind (and judge loopback) as IPv4, which Kestrel can listen on.
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        if (MaxWorkPixelSteps < 64 * 64) throw new InvalidInputException($"--max-work {MaxWorkPixelSteps} is too small for any image (at least {64 * 64})");
        if (MaxImagePixels < 64 * 64) throw new InvalidInputException($"--max-pixels {MaxImagePixels} is too small for any image (at least {64 * 64})");
        if (Port is < 0 or > 65535) throw new InvalidInputException($"--port {Port} is not a port number (0 to 65535)");
        if (MaxQueue is < 0 or > 10_000) throw new InvalidInputException($"--max-queue {MaxQueue} must be between 0 and 10000");
        if (ApiKey is { } key && (key.Length < 8 || key.Any(char.IsWhiteSpace)))
            throw new InvalidInputException("--api-key must be at least 8 characters without spaces");
        if (!IPAddress.IsLoopback(ip) && string.IsNullOrEmpty(ApiKey))
            throw new InvalidInputException($"refusing to listen on {Host} without --api-key: anyone on the network could use the API; pass --api-key KEY or bind to 127.0.0.1");
        return ip;
    }

    /// <summary>
    /// The Host header names requests may carry, or null for any. Behind a loopback bind only loopback names (plus
    /// --allowed-hosts) are answered, so a web page whose DNS name is rebound to 127.0.0.1 cannot reach the API; a
    /// wildcard bind already needs an API key, and checks names only when --allowed-hosts lists them.
    /// </summary>
    public HashSet<string>? HostNames(IPAddress bound)
    {
        bool wildcard = bound.Equals(IPAddress.Any) || bound.Equals(IPAddress.IPv6Any);
        if (wildcard && AllowedHosts.Count == 0) return null;
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "::1", "[::1]" };
        if (!wildcard) names.Add(bound.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{bound}]" : bound.ToString());
        foreach (var h in AllowedHosts) names.Add(h);
        return names;
    }
}
