// POST /api/generate/stream: one "step" event per UNet step and image, then a "result" whose image equals the plain
// endpoint's; bad parameters still get a plain 400.
using System.Net;
using System.Text.Json;
using InstaFlow.IO;

namespace InstaFlow.Tests.Serve;

public sealed class ServeStreamTests : IAsyncLifetime
{
    private RunningServer _run = null!;

    public async Task InitializeAsync() => _run = await RunningServer.StartAsync();
    public async Task DisposeAsync() => await _run.DisposeAsync();

    private static List<(string Name, JsonElement Data)> Parse(string body)
    {
        var events = new List<(string, JsonElement)>();
        foreach (var block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n');
            var name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
            events.Add((name, JsonDocument.Parse(data).RootElement.Clone()));
        }
        return events;
    }

    [Fact]
    public async Task Stream_TwoImagesThreeSteps_StepEventsThenTheSameResult()
    {
        const string body = """{"prompt": "a red fox", "steps": 3, "seed": 4, "batch": 2}""";
        using var res = await _run.Client.PostAsync("api/generate/stream", RunningServer.Json(body));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("text/event-stream", res.Content.Headers.ContentType?.MediaType);
        var events = Parse(await res.Content.ReadAsStringAsync());
        var steps = events.Where(e => e.Name == "step").Select(e => (e.Data.GetProperty("image").GetInt32(), e.Data.GetProperty("step").GetInt32(), e.Data.GetProperty("steps").GetInt32())).ToArray();
        Assert.Equal(new[] { (0, 1, 3), (0, 2, 3), (0, 3, 3), (1, 1, 3), (1, 2, 3), (1, 3, 3) }, steps);
        var (last, data) = events[^1];
        Assert.Equal("result", last);
        using var plain = await _run.Client.PostAsync("api/generate", RunningServer.Json(body));
        var expected = JsonDocument.Parse(await plain.Content.ReadAsStringAsync()).RootElement.GetProperty("images");
        var got = data.GetProperty("images");
        Assert.Equal(2, got.GetArrayLength());
        for (int i = 0; i < 2; i++)
            Assert.Equal(Png.Decode(Convert.FromBase64String(expected[i].GetString()!)).Pixels, Png.Decode(Convert.FromBase64String(got[i].GetString()!)).Pixels);
    }

    [Fact]
    public async Task Stream_BadParameters_Plain400()
    {
        using var res = await _run.Client.PostAsync("api/generate/stream", RunningServer.Json("""{"prompt": "", "steps": 2}"""));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains("prompt", await res.Content.ReadAsStringAsync());
    }
}
