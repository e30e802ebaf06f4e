// The body of POST /api/generate, read field by field from JSON so that every problem (unknown field, wrong type,
// value out of range) becomes a 400 that names the field and says what is wrong.
using System.Text.Json;

namespace InstaFlow.Server;

public sealed record GenerateParameters(string Prompt, string? NegativePrompt, int Steps, float Guidance, ulong Seed, int Width, int Height, int Batch)
{
    public const int MaxSteps = 100, MaxBatch = 8, MaxSize = 2048, MaxPromptChars = 2000;
    public const float MaxGuidance = 30;

    private static readonly string[] Fields = ["prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "batch"];

    /// <summary>Parses and checks a request; sizes must also be multiples of the VAE factor. Absent seed: a random one.</summary>
    public static GenerateParameters Parse(JsonElement body, int defaultWidth, int defaultHeight, int vaeFactor)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new ApiError(null, "the body must be a JSON object");
        foreach (var p in body.EnumerateObject())
            if (!Fields.Contains(p.Name)) throw new ApiError(p.Name, $"unknown field (expected one of: {string.Join(", ", Fields)})");

        var prompt = String(body, "prompt") ?? throw new ApiError("prompt", "is required");
        if (string.IsNullOrWhiteSpace(prompt)) throw new ApiError("prompt", "must not be empty");
        if (prompt.Length > MaxPromptChars) throw new ApiError("prompt", $"must be at most {MaxPromptChars} characters");
        var negative = String(body, "negative_prompt");
        if (negative?.Length > MaxPromptChars) throw new ApiError("negative_prompt", $"must be at most {MaxPromptChars} characters");

        int steps = Int(body, "steps", 1, 1, MaxSteps);
        float guidance = Number(body, "guidance", 0, 0, MaxGuidance);
        int width = Size(body, "width", defaultWidth, vaeFactor), height = Size(body, "height", defaultHeight, vaeFactor);
        int batch = Int(body, "batch", 1, 1, MaxBatch);
        ulong seed = (ulong)Random.Shared.NextInt64(0, uint.MaxValue);
        if (body.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null)
        {
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetUInt64(out seed)) throw new ApiError("seed", "must be a whole number from 0 to 18446744073709551615");
        }
        return new GenerateParameters(prompt, negative, steps, guidance, seed, width, height, batch);
    }

    private static string? String(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new ApiError(name, $"must be a string, got {Kind(v)}");
    }

    private static int Int(JsonElement body, string name, int fallback, int min, int max)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int x)) throw new ApiError(name, $"must be a whole number, got {Kind(v)}");
        return x >= min && x <= max ? x : throw new ApiError(name, $"must be between {min} and {max}, got {x}");
    }

    private static float Number(JsonElement body, string name, float fallback, float min, float max)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number) throw new ApiError(name, $"must be a number, got {Kind(v)}");
        double x = v.GetDouble();
        return x >= min && x <= max ? (float)x : throw new ApiError(name, $"must be between {min} and {max}, got {v.GetRawText()}");
    }

    private static int Size(JsonElement body, string name, int fallback, int vaeFactor)
    {
        int x = Int(body, name, fallback, 8, MaxSize);
        int step = Math.Max(8, vaeFactor);
        return x % 8 == 0 && x % vaeFactor == 0 ? x : throw new ApiError(name, $"must be a multiple of {step}, got {x}");
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
