// The page of a server started with additions (`serve --lora ... --controlnet ...`) in real Chromium: the model line
// names them, the form offers a control image and its scale, and Generate returns the image the API makes from the same
// control image (its size, seed and pixels). A screenshot goes to TestResults/.
using System.Net;
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Pipelines;
using Microsoft.Playwright;

namespace InstaFlow.Tests.Serve;

[Collection(ProcessWide.Name)]
public sealed class ServeAdditionsBrowserTests : IAsyncLifetime
{
    private static string ControlNetDir => Path.Combine(TestUtil.Fixtures, "controlnet", "controlnet");
    private static string Kohya => Path.Combine(TestUtil.Fixtures, "lora", "kohya_lora.safetensors");
    private RunningServer _run = null!;
    private PageBrowser _browser = null!;
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-page-additions-").FullName;

    public async Task InitializeAsync()
    {
        _browser = await PageBrowser.LaunchAsync();
        _run = await RunningServer.StartAsync(o => o with
        {
            Additions = new ModelAdditions { LoraFiles = [Kohya], LoraScale = 0.5f, ControlNetDir = ControlNetDir },
        });
    }

    public async Task DisposeAsync()
    {
        if (_browser != null) await _browser.DisposeAsync();
        if (_run != null) await _run.DisposeAsync();
        Directory.Delete(_tmp, true);
    }

    [Fact]
    public async Task ControlImage_ShownAdditionsAndSameImageAsTheApi()
    {
        // 24x16 random control image, seeded
        var px = new byte[24 * 16 * 3];
        new Random(11).NextBytes(px);
        var control = Path.Combine(_tmp, "control.png");
        Png.Write(control, 24, 16, 3, px);

        var page = await _browser.Browser.NewPageAsync();
        await page.GotoAsync(_run.Server.Address.ToString());
        var row = page.Locator("#control-row");
        await row.WaitForAsync(new() { State = WaitForSelectorState.Visible });
        var model = await page.Locator("#model-name").InnerTextAsync();
        Assert.Contains("lora kohya_lora.safetensors x0.5", model);
        Assert.Contains("controlnet controlnet", model);

        await page.FillAsync("#prompt", "a house");
        await page.UncheckAsync("#random");
        await page.FillAsync("#seed", "3");
        await page.FillAsync("#steps", "2");
        await page.FillAsync("#guidance", "2");
        await page.SetInputFilesAsync("#control-image", control);
        await page.FillAsync("#control-scale", "0.7");
        await page.ClickAsync("#generate");
        var img = page.Locator("#gallery figure img").First;
        await img.WaitForAsync(new() { Timeout = 60_000 });
        var src = await img.GetAttributeAsync("src");
        var shown = Png.Decode(Convert.FromBase64String(src!["data:image/png;base64,".Length..]));
        Assert.Equal((24, 16, "3", "0.7"), (shown.Width, shown.Height, shown.Text["seed"], shown.Text["control_scale"]));

        var body = JsonSerializer.Serialize(new { prompt = "a house", control_image = Convert.ToBase64String(File.ReadAllBytes(control)), control_scale = 0.7, seed = 3, steps = 2, guidance = 2 });
        using var res = await _run.Client.PostAsync("api/generate", RunningServer.Json(body));
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var api = Png.Decode(Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!));
        Assert.Equal(api.Pixels, shown.Pixels);
        await page.ScreenshotAsync(new() { Path = PageBrowser.Screenshot("serve-controlnet-lora.png"), FullPage = true });
    }
}
