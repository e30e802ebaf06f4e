// The refiner's endpoints: GET /api/refiner says whether `serve --refiner` loaded one, POST /api/refine runs SDXL-Refiner
// image-to-image on a base64 image (the page's Refine button) through the same one-at-a-time queue as generation.
using System.Diagnostics;
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace InstaFlow.Server;

/// <summary>maxImagePixels and maxWorkPixelSteps are the server's limits (serve --max-pixels, --max-work), as for /api/generate.</summary>
public sealed class RefineApi(RefinerComponents? refiner, GenerationQueue queue, long maxImagePixels, long maxWorkPixelSteps)
{
    private static readonly JsonSerializerOptions Json = GenerationApi.Json;
    private static readonly string[] Fields = ["image", "prompt", "negative_prompt", "strength", "steps", "guidance", "seed"];

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/api/refiner", () => Results.Json(new { Available = refiner != null, Name = refiner?.Name }, Json));
        app.MapPost("/api/refine", Refine);
    }

    private async Task<IResult> Refine(HttpRequest request)
    {
        var ctx = request.HttpContext;
        try
        {
            if (refiner == null) throw new ApiError(null, "this server has no refiner (start it with serve --refiner DIR)", StatusCodes.Status404NotFound);
            JsonElement body;
            try { using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted); body = doc.RootElement.Clone(); }
            catch (JsonException e) { throw new ApiError(null, $"the body is not valid JSON ({e.Message})"); }
            RefineRequest req;
            // System.Text.Json decodes escapes when a string is read: a lone surrogate ("\ud800") fails only there.
            try { req = Parse(body); }
            catch (InvalidOperationException e) { throw new ApiError(null, $"the body holds a string that is not valid Unicode ({e.Message})"); }
            CheckLimits(req);
            var waited = Stopwatch.StartNew();
            var result = await queue.RunAsync(ct =>
            {
                double queued = waited.Elapsed.TotalSeconds;
                var res = new RefinerPipeline(refiner).Refine(req, ct);
                res.FinalLatents.Dispose();
                var timings = new Dictionary<string, double> { ["queue"] = queued };
                foreach (var t in res.Timings) timings[t.Stage] = t.Seconds;
                return new { Image = Convert.ToBase64String(Png.Encode(res.Width, res.Height, 3, res.ImagesHwc[0], res.Metadata[0].ToPngText())), req.Seed, res.Width, res.Height, Timings = timings, Model = refiner.Name };
            }, ctx.RequestAborted);
            return Results.Json(result, Json);
        }
        catch (ApiError e) { return GenerationApi.Error(e); }
        catch (QueueFullException e)
        {
            ctx.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return GenerationApi.Error(new ApiError(null, e.Message, StatusCodes.Status429TooManyRequests));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { return Results.Empty; }
        catch (InvalidInputException e) { return GenerationApi.Error(new ApiError(null, e.Message)); }
    }

    /// <summary>The server's per-image and per-request limits: the steps run (after strength) twice (guided), plus encode and decode.</summary>
    private void CheckLimits(RefineRequest r)
    {
        if ((long)r.Width * r.Height > maxImagePixels)
            throw new ApiError("image", $"{r.Width}x{r.Height} is over this server's limit of {maxImagePixels} pixels per image; send a smaller image (the operator can raise serve --max-pixels)");
        long run = r.Steps - RefinerPipeline.StartStep(r.Steps, r.Strength);
        long work = (long)r.Width * r.Height * (2 * run + 2);
        if (work > maxWorkPixelSteps)
            throw new ApiError(null, $"{r.Width}x{r.Height} x (2 x {run} guided steps + encode and decode) is {work} pixel-steps, over this server's limit of {maxWorkPixelSteps}; ask for fewer steps, a lower strength or a smaller image (the operator can raise serve --max-work)");
    }

    /// <summary>Field checks as /api/generate's; defaults are the demo's (strength 0.3, 50 steps, guidance 5).</summary>
    private static RefineRequest Parse(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new ApiError(null, "the body must be a JSON object");
        foreach (var p in body.EnumerateObject())
            if (!Fields.Contains(p.Name)) throw new ApiError(p.Name, $"unknown field (expected one of: {string.Join(", ", Fields)})");
        string? Str(string name) => GenerateParameters.String(body, name);
        double Num(string name, double fallback, double min, double max) => GenerateParameters.Number(body, name, (float)fallback, (float)min, (float)max);
        var prompt = Str("prompt") ?? throw new ApiError("prompt", "is required");
        if (string.IsNullOrWhiteSpace(prompt) || prompt.Length > GenerateParameters.MaxPromptChars) throw new ApiError("prompt", $"must be 1 to {GenerateParameters.MaxPromptChars} characters");
        var image = GenerateParameters.DecodeImage(Str("image") ?? throw new ApiError("image", "is required (a base64 PNG, JPEG, WebP, BMP or GIF)"), "image", 8);
        int steps = GenerateParameters.Int(body, "steps", 50, 1, GenerateParameters.MaxSteps);
        ulong seed = SeedPolicy.NewSeed();
        if (body.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null && (s.ValueKind != JsonValueKind.Number || !s.TryGetUInt64(out seed)))
            throw new ApiError("seed", "must be a whole number from 0 to 18446744073709551615");
        float strength = (float)Num("strength", 0.3, 0.01, 1);
        if (RefinerPipeline.StartStep(steps, strength) >= steps) throw new ApiError("strength", $"{strength} of {steps} steps runs no step; raise strength or steps");
        return new RefineRequest
        {
            ImageHwc = image.Pixels, Width = image.Width, Height = image.Height, Prompt = prompt, NegativePrompt = Str("negative_prompt"),
            Strength = strength, Steps = steps, Guidance = (float)Num("guidance", 5, 0, GenerateParameters.MaxGuidance), Seed = seed,
        };
    }
}
