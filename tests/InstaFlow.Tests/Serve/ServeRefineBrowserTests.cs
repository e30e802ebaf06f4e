// The demo's page in real Chromium with `serve --refiner`: Generate with the random seed on by default shows the seed
// and the stage times, "reuse seed" puts it back in the form, Refine adds the refined image with its time, and an
// uploaded image starts image-to-image at its own size. Screenshots go to TestResults/.
using InstaFlow.IO;
using InstaFlow.Tests.Models;
using Microsoft.Playwright;

namespace InstaFlow.Tests.Serve;

[Collection(ProcessWide.Name)]
public sealed class ServeRefineBrowserTests : IAsyncLifetime
{
    private RunningServer _run = null!;
    private PageBrowser _browser = null!;
    private readonly string _tmp = Directory.CreateTempSubdirectory("instaflow-page-").FullName;

    public async Task InitializeAsync()
    {
        _browser = await PageBrowser.LaunchAsync();
        _run = await RunningServer.StartAsync(o => o with { RefinerDir = RefinerModelGoldenTests.Tiny });
    }

    public async Task DisposeAsync()
    {
        if (_browser != null) await _browser.DisposeAsync();
        if (_run != null) await _run.DisposeAsync();
        Directory.Delete(_tmp, true);
    }

    private async Task<IPage> OpenPage()
    {
        var page = await _browser.Browser.NewPageAsync();
        // the Refine button is added only once the page knows the server has a refiner
        var refiner = page.WaitForResponseAsync(r => r.Url.EndsWith("/api/refiner"));
        await page.GotoAsync(_run.Server.Address.ToString());
        await page.Locator("#size option").First.WaitForAsync(new() { State = WaitForSelectorState.Attached });
        await refiner;
        return page;
    }

    [Fact]
    public async Task GenerateThenRefine_ShowsSeedTimesAndBothImages()
    {
        var page = await OpenPage();
        Assert.True(await page.IsCheckedAsync("#random"));
        Assert.True(await page.IsDisabledAsync("#seed"));
        await page.FillAsync("#prompt", "a red apple on a table");
        await page.ClickAsync("#generate");
        var img = page.Locator("#gallery figure img").First;
        await img.WaitForAsync(new() { Timeout = 60_000 });

        // the seed the server drew is shown, and is the one in the PNG
        var seedText = await page.Locator("#gallery .seed").First.InnerTextAsync();
        var src = await img.GetAttributeAsync("src");
        var png = Png.Decode(Convert.FromBase64String(src!["data:image/png;base64,".Length..]));
        Assert.Equal($"seed {png.Text["seed"]}", seedText);
        Assert.Matches(@"generated in \d+\.\d\d s: .*text_encoder .*unet_step0 .*vae_decode", await page.Locator("#gallery .time").First.InnerTextAsync());

        // reuse puts the seed back in the form with the random seed off
        await page.ClickAsync("#gallery .reuse");
        Assert.False(await page.IsCheckedAsync("#random"));
        Assert.Equal(png.Text["seed"], await page.InputValueAsync("#seed"));

        await page.ClickAsync("#gallery .refine");
        var refined = page.Locator("#gallery img.refined").First;
        await refined.WaitForAsync(new() { Timeout = 120_000 });
        var natural = await refined.EvaluateAsync<int[]>("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])");
        Assert.Equal(new[] { png.Width, png.Height }, natural);
        var refinedSrc = await refined.GetAttributeAsync("src");
        Assert.NotEqual(src, refinedSrc);
        Assert.Matches(@"refined in \d+\.\d\d s \(.*vae_encode .*unet_step0 .*vae_decode", await page.Locator("#gallery .refine-time").First.InnerTextAsync());
        await page.ScreenshotAsync(new() { Path = PageBrowser.Screenshot("serve-refine.png"), FullPage = true });
    }

    [Fact]
    public async Task UploadInitImage_GeneratesAtTheImageSize()
    {
        var upload = Path.Combine(_tmp, "start.png");
        var px = new byte[40 * 24 * 3];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)(i * 13 % 256);
        Png.Write(upload, 40, 24, 3, px);
        var page = await OpenPage();
        await page.FillAsync("#prompt", "a blue bird");
        await page.SetInputFilesAsync("#init-image", upload);
        await page.FillAsync("#strength", "0.6");
        await page.ClickAsync("#generate");
        var img = page.Locator("#gallery figure img").First;
        await img.WaitForAsync(new() { Timeout = 60_000 });
        var natural = await img.EvaluateAsync<int[]>("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])");
        Assert.Equal(new[] { 40, 24 }, natural);
        Assert.Contains("vae_encode", await page.Locator("#gallery .time").First.InnerTextAsync());
        await page.ScreenshotAsync(new() { Path = PageBrowser.Screenshot("serve-img2img.png"), FullPage = true });
    }
}
