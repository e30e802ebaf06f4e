// POST /api/refine's bad-input answers: the server's per-image pixel limit and work budget apply to refining as to
// generating, and a lone surrogate or an unknown field is a 400 naming the problem, never a 500.
using System.Net;
using System.Text.Json;
using InstaFlow.IO;

namespace InstaFlow.Tests.Serve;

public sealed class ServeRefineApiTests
{
    private static string Refiner => Path.Combine(TestUtil.Fixtures, "sdxl_refiner", "tiny-refiner");

    private static string Image(int w, int h) => Convert.ToBase64String(Png.Encode(w, h, 3, new byte[w * h * 3]));

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Refine(RunningServer run, string body)
    {
        using var resp = await run.Client.PostAsync("api/refine", RunningServer.Json(body));
        return (resp.StatusCode, JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    [Fact]
    public async Task Refine_OverTheServersLimits_400NamingTheOption()
    {
        await using var run = await RunningServer.StartAsync(o => o with { RefinerDir = Refiner, MaxImagePixels = 64 * 64, MaxWorkPixelSteps = 64 * 64 * 12 });
        var (status, body) = await Refine(run, $$"""{"prompt": "a cat", "image": "{{Image(128, 128)}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("image", body.GetProperty("field").GetString());
        Assert.Contains("--max-pixels", body.GetProperty("reason").GetString());

        // 50 steps at strength 1 run 50 guided steps: 64x64 x 102 pixel-steps is over 64x64 x 12
        (status, body) = await Refine(run, $$"""{"prompt": "a cat", "image": "{{Image(64, 64)}}", "strength": 1}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("--max-work", body.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("""{"prompt": "\ud800", "image": "AAAA"}""", "Unicode")]
    [InlineData("""{"prompt": "a", "image": "AAAA", "nope": 1}""", "unknown field")]
    [InlineData("""{"prompt": "a", "image": "IMAGE", "steps": 2.5}""", "whole number")]
    public async Task Refine_BadBody_400(string body, string fragment)
    {
        await using var run = await RunningServer.StartAsync(o => o with { RefinerDir = Refiner });
        var (status, answer) = await Refine(run, body.Replace("IMAGE", Image(16, 16)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(fragment, answer.GetRawText());
    }
}
