// The body of POST /api/generate, read field by field from JSON so that every problem (unknown field, wrong type,
// value out of range) becomes a 400 that names the field and says what is wrong.
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;

namespace InstaFlow.Server;

public sealed record GenerateParameters(string Prompt, string? NegativePrompt, int Steps, float Guidance, ulong Seed, int Width, int Height, int Batch)
{
    public const int MaxSteps = 100, MaxBatch = 8, MaxSize = 2048, MaxPromptChars = 2000;
    public const float MaxGuidance = 30;

    /// <summary>A decoded control image (RGB), when the request carried one for the server's ControlNet.</summary>
    public ControlImage? Control { get; init; }
    /// <summary>Image-to-image: the decoded init_image (the output takes its size) and the strength (default 0.5).</summary>
    public InitImage? InitImage { get; init; }
    public float Strength { get; init; } = 1f;

    private static readonly string[] Fields = ["prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "batch", "control_image", "control_scale", "init_image", "strength"];

    /// <summary>
    /// Parses and checks a request against the model: its default steps, guidance and size, its size multiple, and
    /// whether it has a ControlNet. Absent seed: a new random one (SeedPolicy).
    /// </summary>
    public static GenerateParameters Parse(JsonElement body, ITextToImageModel model)
    {
        int defaultSize = ImageSize.Default(model), multiple = ImageSize.Multiple(model);
        if (body.ValueKind != JsonValueKind.Object) throw new ApiError(null, "the body must be a JSON object");
        foreach (var p in body.EnumerateObject())
            if (!Fields.Contains(p.Name)) throw new ApiError(p.Name, $"unknown field (expected one of: {string.Join(", ", Fields)})");

        var prompt = String(body, "prompt") ?? throw new ApiError("prompt", "is required");
        if (string.IsNullOrWhiteSpace(prompt)) throw new ApiError("prompt", "must not be empty");
        if (prompt.Length > MaxPromptChars) throw new ApiError("prompt", $"must be at most {MaxPromptChars} characters");
        var negative = String(body, "negative_prompt");
        if (negative?.Length > MaxPromptChars) throw new ApiError("negative_prompt", $"must be at most {MaxPromptChars} characters");

        int steps = Int(body, "steps", Math.Min(model.Defaults.Steps, MaxSteps), 1, MaxSteps);
        float guidance = Number(body, "guidance", Math.Min(model.Defaults.Guidance, MaxGuidance), 0, MaxGuidance);
        int width = Size(body, "width", defaultSize, multiple), height = Size(body, "height", defaultSize, multiple);
        int batch = Int(body, "batch", 1, 1, MaxBatch);
        var control = ReadControl(body, model);
        if (control != null)
        {
            // the output takes the control image's size, as in generate
            if (body.TryGetProperty("width", out var wv) && wv.ValueKind != JsonValueKind.Null && width != control.Width) throw new ApiError("width", $"must equal the control image's width {control.Width} (or be left out), got {width}");
            if (body.TryGetProperty("height", out var hv) && hv.ValueKind != JsonValueKind.Null && height != control.Height) throw new ApiError("height", $"must equal the control image's height {control.Height} (or be left out), got {height}");
            width = control.Width; height = control.Height;
        }
        InitImage? init = null;
        float strength = 1f;
        if (String(body, "init_image") is string ib64)
        {
            if (control != null) throw new ApiError("init_image", "cannot be combined with control_image");
            var im = DecodeImage(ib64, "init_image", multiple);
            init = new InitImage(im.Pixels, im.Width, im.Height);
            (width, height) = (im.Width, im.Height);
            strength = Number(body, "strength", 0.5f, 0f, 1f);
        }
        else if (body.TryGetProperty("strength", out var sv) && sv.ValueKind != JsonValueKind.Null) throw new ApiError("strength", "needs an init_image");
        ulong seed = SeedPolicy.NewSeed();
        if (body.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null)
        {
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetUInt64(out seed)) throw new ApiError("seed", "must be a whole number from 0 to 18446744073709551615");
        }
        return new GenerateParameters(prompt, negative, steps, guidance, seed, width, height, batch) { Control = control, InitImage = init, Strength = strength };
    }

    /// <summary>"control_image": a base64 image (PNG, JPEG, WebP, BMP, GIF) for the server's ControlNet; "control_scale": its strength (default 1).</summary>
    private static ControlImage? ReadControl(JsonElement body, ITextToImageModel model)
    {
        var b64 = String(body, "control_image");
        bool hasScale = body.TryGetProperty("control_scale", out var sv) && sv.ValueKind != JsonValueKind.Null;
        if (b64 == null)
        {
            if (hasScale) throw new ApiError("control_scale", "needs a control_image");
            return null;
        }
        if (model.ControlNet == null) throw new ApiError("control_image", "this server has no ControlNet (start it with serve --controlnet DIR)");
        float scale = Number(body, "control_scale", 1f, 0f, 10f);
        byte[] bytes;
        try { bytes = Convert.FromBase64String(b64); }
        catch (FormatException) { throw new ApiError("control_image", "must be a base64-encoded image (PNG, JPEG, WebP, BMP or GIF)"); }
        PngImage png;
        try { png = ImageFile.Decode(bytes, "control_image"); }
        catch (InvalidInputException e) { throw new ApiError("control_image", $"is not a usable image ({e.Message})"); }
        int multiple = ImageSize.Multiple(model);
        foreach (var (name, v) in new[] { ("width", png.Width), ("height", png.Height) })
            if (v % multiple != 0 || v > MaxSize) throw new ApiError("control_image", $"its {name} {v} must be a multiple of {multiple}, at most {MaxSize}");
        return new ControlImage(png.Pixels, png.Width, png.Height, scale);
    }

    /// <summary>A base64 image field decoded to RGB; its sides must be multiples of `multiple`, at most MaxSize.</summary>
    internal static PngImage DecodeImage(string b64, string field, int multiple)
    {
        byte[] bytes;
        try { bytes = Convert.FromBase64String(b64); }
        catch (FormatException) { throw new ApiError(field, "must be a base64-encoded image (PNG, JPEG, WebP, BMP or GIF)"); }
        PngImage png;
        try { png = ImageFile.Decode(bytes, field); }
        catch (InvalidInputException e) { throw new ApiError(field, $"is not a usable image ({e.Message})"); }
        foreach (var (name, v) in new[] { ("width", png.Width), ("height", png.Height) })
            if (v % multiple != 0 || v > MaxSize) throw new ApiError(field, $"its {name} {v} must be a multiple of {multiple}, at most {MaxSize}");
        return png;
    }

    internal static string? String(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new ApiError(name, $"must be a string, got {Kind(v)}");
    }

    internal static int Int(JsonElement body, string name, int fallback, int min, int max)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int x)) throw new ApiError(name, $"must be a whole number, got {Kind(v)}");
        return x >= min && x <= max ? x : throw new ApiError(name, $"must be between {min} and {max}, got {x}");
    }

    internal static float Number(JsonElement body, string name, float fallback, float min, float max)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number) throw new ApiError(name, $"must be a number, got {Kind(v)}");
        double x = v.GetDouble();
        return x >= min && x <= max ? (float)x : throw new ApiError(name, $"must be between {min} and {max}, got {v.GetRawText()}");
    }

    private static int Size(JsonElement body, string name, int fallback, int multiple)
    {
        int x = Int(body, name, Math.Min(fallback, MaxSize), 8, MaxSize);
        return x % multiple == 0 ? x : throw new ApiError(name, $"must be a multiple of {multiple}, got {x}");
    }

    private static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => v.ValueKind.ToString().ToLowerInvariant(),
    };
}

/// <summary>A rejected request: becomes JSON {error, field, reason} with the status code.</summary>
public sealed class ApiError(string? field, string reason, int status = 400)
    : Exception(field == null ? reason : $"{field}: {reason}")
{
    public string? Field { get; } = field;
    public string Reason { get; } = reason;
    public int Status { get; } = status;
}
