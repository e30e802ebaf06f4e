// The REST API: POST /api/generate (JSON with base64 PNGs, or the first PNG when Accept asks for image/png),
// POST /api/generate/stream (server-sent events: a "step" per UNet step, then the same JSON as "result"),
// GET /api/health and GET /api/model. Errors are JSON {error, field, reason}.
using System.Diagnostics;
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace InstaFlow.Server;

public sealed class GenerationApi(ITextToImageModel model, IReadOnlyDictionary<string, (string Library, string Class)> components,
    GenerationQueue queue, long maxBodyBytes)
{
    // The relaxed encoder leaves '+' in base64 as is (the default writes \u002B); the JSON is never inlined in HTML.
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
    private readonly RectifiedFlowPipeline _pipeline = new(model);

    /// <summary>Pixel-steps one request may ask for (ServerOptions.MaxWorkPixelSteps).</summary>
    public long MaxWorkPixelSteps { get; init; } = ServerOptions.DefaultMaxWorkPixelSteps;

    /// <summary>Pixels one image may have (ServerOptions.MaxImagePixels).</summary>
    public long MaxImagePixels { get; init; } = ServerOptions.DefaultMaxImagePixels;

    private GenerateParameters Parse(JsonElement body)
    {
        GenerateParameters p;
        try { p = GenerateParameters.Parse(body, model); }
        catch (InvalidOperationException e)
        {
            // System.Text.Json decodes escapes when a string is read: a lone surrogate ("\ud800") fails only there.
            throw new ApiError(null, $"the body holds a string that is not valid Unicode ({e.Message})");
        }
        if ((long)p.Width * p.Height > MaxImagePixels)
            throw new ApiError("width", $"{p.Width}x{p.Height} is over this server's limit of {MaxImagePixels} pixels per image; ask for a smaller image (the operator can raise serve --max-pixels)");
        // every image costs its UNet steps and about one step more to decode
        long work = (long)p.Width * p.Height * p.Batch * (p.Steps + 1);
        if (work > MaxWorkPixelSteps)
            throw new ApiError(null, $"{p.Width}x{p.Height} x {p.Batch} images x ({p.Steps} steps + decode) is {work} pixel-steps, over this server's limit of {MaxWorkPixelSteps}; ask for fewer pixels, images or steps (the operator can raise serve --max-work)");
        return p;
    }

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/api/health", () => Results.Json(new { Status = "ok", Model = model.Description, Queue = new { queue.Pending, queue.MaxWaiting } }, Json));
        app.MapGet("/api/model", ModelInfo);
        app.MapPost("/api/generate", Generate);
        app.MapPost("/api/generate/stream", GenerateStream);
    }

    public static IResult Error(ApiError e) => Results.Json(new { Error = e.Message, e.Field, e.Reason }, Json, statusCode: e.Status);

    private IResult ModelInfo()
    {
        int w = _pipeline.DefaultWidth, h = _pipeline.DefaultHeight;
        return Results.Json(new
        {
            Name = model.Description,
            Components = components.ToDictionary(c => c.Key, c => c.Value.Class),
            DefaultSteps = model.Defaults.Steps,
            DefaultGuidance = model.Defaults.Guidance,
            DefaultsFrom = model.Defaults.Source,
            ControlNet = model.ControlNet != null,
            DefaultWidth = w,
            DefaultHeight = h,
            SampleSizes = SampleSizes(w, h),
            Limits = new
            {
                GenerateParameters.MaxSteps, GenerateParameters.MaxGuidance, GenerateParameters.MaxBatch,
                GenerateParameters.MaxSize, SizeMultiple = SizeMultiple(),
            },
        }, Json);
    }

    private int SizeMultiple() => ImageSize.Multiple(model);

    /// <summary>Sizes offered by the page: the model's own size and a few near it (3/4 to 3/2), as {width, height}.</summary>
    private object[] SampleSizes(int w, int h)
    {
        int m = SizeMultiple();
        int Snap(int x) => Math.Clamp(x / m * m, m, GenerateParameters.MaxSize / m * m);
        return new[] { (3, 4), (1, 1), (5, 4), (3, 2) }
            .Select(r => (W: Snap(w * r.Item1 / r.Item2), H: Snap(h * r.Item1 / r.Item2)))
            .Distinct()
            .Select(s => (object)new { Width = s.W, Height = s.H })
            .ToArray();
    }

    // Takes the request, not the context: a Func<HttpContext, Task<IResult>> would bind as a RequestDelegate and
    // its result would be dropped.
    private async Task<IResult> Generate(HttpRequest request)
    {
        var ctx = request.HttpContext;
        try
        {
            var p = Parse(await ReadBody(ctx));
            var waited = Stopwatch.StartNew();
            var output = await queue.RunAsync(ct => Run(p, ct, waited.Elapsed.TotalSeconds, null), ctx.RequestAborted);
            if (WantsPng(ctx.Request))
            {
                ctx.Response.Headers["X-Seed"] = output.Seeds[0].ToString(System.Globalization.CultureInfo.InvariantCulture);
                return Results.Bytes(output.Pngs[0], "image/png");
            }
            return Results.Json(Result(p, output), Json);
        }
        catch (ApiError e) { return Error(e); }
        catch (QueueFullException e)
        {
            ctx.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Error(new ApiError(null, e.Message, StatusCodes.Status429TooManyRequests));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client is gone; nobody reads a response.
            return Results.Empty;
        }
        catch (InvalidInputException e) { return Error(new ApiError(null, e.Message)); }
    }

    private object Result(GenerateParameters p, Output output) => new
    {
        Images = output.Pngs.Select(Convert.ToBase64String),
        output.Seeds, p.Width, p.Height, output.Timings,
        p.Prompt, p.NegativePrompt, p.Steps, p.Guidance, Model = model.Description,
    };

    /// <summary>
    /// The same generation as /api/generate, answered as server-sent events: `step` {image, step, steps} after every
    /// UNet step, then `result` (the JSON of /api/generate) or `error`. Bad parameters and a full queue still get their
    /// plain status codes, since nothing has been streamed yet.
    /// </summary>
    private async Task GenerateStream(HttpContext ctx)
    {
        GenerateParameters p;
        try { p = Parse(await ReadBody(ctx)); }
        catch (ApiError e) { await Error(e).ExecuteAsync(ctx); return; }
        // steps are reported from the generating thread; the request thread writes them out in order
        var events = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var waited = Stopwatch.StartNew();
        var job = queue.RunAsync(ct => Run(p, ct, waited.Elapsed.TotalSeconds,
            (image, step, steps) => events.Writer.TryWrite(Event("step", new { Image = image, Step = step + 1, Steps = steps }))), ctx.RequestAborted);
        _ = job.ContinueWith(_ => events.Writer.TryComplete(), TaskScheduler.Default);
        try
        {
            // admission (queue full) is decided before the first await inside RunAsync returns
            if (job.IsFaulted && job.Exception!.InnerException is QueueFullException full)
            {
                ctx.Response.Headers.RetryAfter = full.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await Error(new ApiError(null, full.Message, StatusCodes.Status429TooManyRequests)).ExecuteAsync(ctx);
                return;
            }
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            await foreach (var e in events.Reader.ReadAllAsync(ctx.RequestAborted))
            {
                await ctx.Response.WriteAsync(e, ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }
            string last;
            try { last = Event("result", Result(p, await job)); }
            catch (InvalidInputException e) { last = Event("error", new { Error = e.Message }); }
            await ctx.Response.WriteAsync(last, ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // the client is gone; the queue has dropped or stopped its job
        }
    }

    private static string Event(string name, object data) => $"event: {name}\ndata: {JsonSerializer.Serialize(data, Json)}\n\n";

    private async Task<JsonElement> ReadBody(HttpContext ctx)
    {
        // Only JSON: a form or text/plain POST is a "simple" cross-origin request any web page can send without a
        // preflight, so accepting it would let pages drive the API (CSRF).
        if (!IsJson(ctx.Request.ContentType))
            throw new ApiError("Content-Type", $"must be application/json, got {(string.IsNullOrEmpty(ctx.Request.ContentType) ? "none" : $"\"{ctx.Request.ContentType}\"")}", StatusCodes.Status415UnsupportedMediaType);
        try
        {
            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted);
            return doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new ApiError(null, $"the body is not valid JSON ({e.Message})"); }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ApiError(null, $"the body is larger than {maxBodyBytes} bytes", e.StatusCode);
        }
    }

    private static bool IsJson(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var mt)
        && (mt.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mt.MediaType.Value!.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    private sealed record Output(byte[][] Pngs, ulong[] Seeds, Dictionary<string, double> Timings);

    /// <summary>
    /// The library's GenerateImages, as the CLI runs it: image i from seed + i, so each image can be made again alone
    /// (API or CLI) from its own seed, and its PNG records that seed.
    /// </summary>
    private Output Run(GenerateParameters p, CancellationToken cancellation, double queueSeconds, Action<int, int, int>? progress)
    {
        var timings = new Dictionary<string, double> { ["queue"] = queueSeconds };
        // one job at a time (the queue), so the shared pipeline's callback belongs to this run
        _pipeline.Progress = progress == null ? null : g => progress(g.Image, g.Step, g.Steps);
        var res = _pipeline.GenerateImages(new GenerationRequest
        {
            Prompts = [p.Prompt], NegativePrompts = p.NegativePrompt == null ? null : [p.NegativePrompt],
            Steps = p.Steps, Guidance = p.Guidance, Seed = p.Seed, Width = p.Width, Height = p.Height, Control = p.Control,
            InitImage = p.InitImage, Strength = p.Strength,
        }, p.Batch, cancellation);
        res.FinalLatents.Dispose();
        foreach (var t in res.Timings) timings[t.Stage] = t.Seconds;
        var sw = Stopwatch.StartNew();
        var pngs = res.ImagesHwc.Select((img, i) => Png.Encode(res.Width, res.Height, 3, img, res.Metadata[i].ToPngText())).ToArray();
        timings["png_encode"] = sw.Elapsed.TotalSeconds;
        return new Output(pngs, res.Metadata.Select(m => m.Seed).ToArray(), timings);
    }

    /// <summary>True when Accept ranks image/png above application/json (JSON stays the default).</summary>
    private static bool WantsPng(HttpRequest request)
    {
        var accept = request.GetTypedHeaders().Accept;
        double Quality(string type) => accept.Where(a => a.MediaType.Equals(type, StringComparison.OrdinalIgnoreCase))
            .Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        double png = Quality("image/png");
        return png > 0 && png > Quality("application/json");
    }
}
