// `instaflow serve`: loads the model once, then serves the page and the REST API with Kestrel on the configured
// address (port 0 picks a free one, read back from Address).
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using InstaFlow.Models;
using InstaFlow.Pipelines;

namespace InstaFlow.Server;

public sealed class InstaFlowServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SdComponents _model;
    private RefinerComponents? _refiner;

    /// <summary>The bound base address, e.g. http://127.0.0.1:7860/.</summary>
    public Uri Address { get; }
    public GenerationQueue Queue { get; }

    private InstaFlowServer(WebApplication app, SdComponents model, GenerationQueue queue, Uri address)
    {
        _app = app; _model = model; Queue = queue; Address = address;
    }

    /// <summary>Checks the options (before the slow model load), loads the model and starts listening.</summary>
    public static async Task<InstaFlowServer> StartAsync(ServerOptions options, CancellationToken cancellation = default)
    {
        var ip = options.Validate();
        var model = options.Source is { } source ? SdComponents.Open(source) : SdComponents.Load(options.ModelDir, options.Variant);
        var components = Directory.Exists(options.ModelDir) ? DiffusersFolder.Open(options.ModelDir).Components : SdComponents.SingleFileComponents;
        RefinerComponents? refiner = null;
        try
        {
            options.Additions.ApplyTo(model, options.ConsoleLog ? Console.Error.WriteLine : null);
            if (options.PackWeightsOnce) model.PackWeightsOnce();
            refiner = options.RefinerDir == null ? null : RefinerComponents.Load(options.RefinerDir, options.Variant);
            long maxBody = options.MaxRequestBodyBytes;
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            if (options.ConsoleLog) builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = maxBody;
                k.Listen(ip, options.Port);
            });
            var app = builder.Build();
            if (options.HostNames(ip) is { } hosts) RequireHost(app, hosts);
            if (options.ApiKey is { } key) RequireApiKey(app, new ApiKeyCheck(key));
            var queue = new GenerationQueue(options.MaxQueue);
            new GenerationApi(model, components, queue, maxBody) { MaxWorkPixelSteps = options.MaxWorkPixelSteps, MaxImagePixels = options.MaxImagePixels }.Map(app);
            new RefineApi(refiner, queue, options.MaxImagePixels, options.MaxWorkPixelSteps).Map(app);
            StaticPage.Map(app);
            await app.StartAsync(cancellation);
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new InstaFlowServer(app, model, queue, new Uri(bound.TrimEnd('/') + "/")) { _refiner = refiner };
        }
        catch
        {
            model.Dispose();
            refiner?.Dispose();
            throw;
        }
    }

    private static void RequireHost(WebApplication app, HashSet<string> names) => app.Use(async (ctx, next) =>
    {
        // Host is "name" or "name:port"; an IPv6 literal keeps its brackets ("[::1]:7860").
        string host = ctx.Request.Host.Host;
        if (!names.Contains(host) && !names.Contains($"[{host}]"))
        {
            await GenerationApi.Error(new ApiError("Host", $"this server does not answer for \"{host}\" (allowed: {string.Join(", ", names.Order())}); add it with --allowed-hosts", StatusCodes.Status421MisdirectedRequest)).ExecuteAsync(ctx);
            return;
        }
        await next(ctx);
    });

    private static void RequireApiKey(WebApplication app, ApiKeyCheck check) => app.Use(async (ctx, next) =>
    {
        if (ctx.Request.Path.StartsWithSegments("/api") && !check.IsAuthorized(ctx.Request))
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await GenerationApi.Error(new ApiError(null, "missing or wrong API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`", StatusCodes.Status401Unauthorized)).ExecuteAsync(ctx);
            return;
        }
        await next(ctx);
    });

    /// <summary>Completes when the host stops (Ctrl+C / SIGTERM, or the token).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _app.WaitForShutdownAsync(cancellation);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await Queue.CloseAsync();
        await _app.DisposeAsync();
        _model.Dispose();
        _refiner?.Dispose();
    }
}
