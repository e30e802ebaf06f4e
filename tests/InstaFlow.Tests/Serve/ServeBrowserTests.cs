// The web page in a real browser (the system's Chromium driven by Playwright): type a prompt, click Generate,
// wait for the image, check its size, and keep a screenshot; API errors appear on the page; Cancel frees the queue.
using InstaFlow.IO;
using Microsoft.Playwright;

namespace InstaFlow.Tests.Serve;

[Collection(ProcessWide.Name)]
public sealed class ServeBrowserTests : IAsyncLifetime
{
    private RunningServer _run = null!;
    private PageBrowser _browser = null!;

    public async Task InitializeAsync()
    {
        _browser = await PageBrowser.LaunchAsync();
        _run = await RunningServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_browser != null) await _browser.DisposeAsync();
        if (_run != null) await _run.DisposeAsync();
    }

    private async Task<IPage> OpenPage()
    {
        var page = await _browser.Browser.NewPageAsync();
        await page.GotoAsync(_run.Server.Address.ToString());
        // The size list is filled from /api/model once the page has talked to the server.
        await page.Locator("#size option").First.WaitForAsync(new() { State = WaitForSelectorState.Attached });
        return page;
    }

    [Fact]
    public async Task Generate_ShowsImageOfChosenSize()
    {
        var page = await OpenPage();
        await page.FillAsync("#prompt", "a green frog on a leaf");
        await page.UncheckAsync("#random");
        await page.FillAsync("#seed", "42");
        await page.SelectOptionAsync("#size", "24x24");
        await page.ClickAsync("#generate");
        var img = page.Locator("#gallery img").First;
        await img.WaitForAsync(new() { Timeout = 60_000 });

        var natural = await img.EvaluateAsync<int[]>("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])");
        Assert.Equal(new[] { 24, 24 }, natural);
        var src = await img.GetAttributeAsync("src");
        Assert.StartsWith("data:image/png;base64,", src);
        var png = Png.Decode(Convert.FromBase64String(src!["data:image/png;base64,".Length..]));
        Assert.Equal((24, 24, "42"), (png.Width, png.Height, png.Text["seed"]));
        Assert.Contains("a green frog on a leaf", await page.Locator("#gallery .params").First.InnerTextAsync());
        Assert.Equal(1, await page.Locator("#gallery a[download]").CountAsync());

        Assert.True(await page.Locator("#control-row").IsHiddenAsync(), "a server without a ControlNet offers no control image");
        await page.ScreenshotAsync(new() { Path = PageBrowser.Screenshot("serve-web-ui.png"), FullPage = true });
    }

    [Fact]
    public async Task ApiError_ShownOnPage()
    {
        var page = await OpenPage();
        await page.FillAsync("#prompt", "   ");
        await page.ClickAsync("#generate");
        var error = page.Locator("#error");
        await error.WaitForAsync(new() { State = WaitForSelectorState.Visible });
        Assert.Contains("prompt: must not be empty", await error.InnerTextAsync());
        Assert.Equal(0, await page.Locator("#gallery img").CountAsync());
    }

    private Task WaitForPending(int n) => _run.WaitForPending(n, TimeSpan.FromSeconds(30));

    [Fact]
    public async Task Cancel_WhileQueued_ShowsCancelledAndFreesTheQueue()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _run.Server.Queue.BeforeRun = ct => gate.Task.WaitAsync(ct); // holds the job until the client goes away
        var page = await OpenPage();
        await page.FillAsync("#prompt", "a slow request");
        await page.ClickAsync("#generate");
        await page.Locator("#cancel").WaitForAsync(new() { State = WaitForSelectorState.Visible });
        await WaitForPending(1);
        await page.ClickAsync("#cancel");

        var error = page.Locator("#error");
        await error.WaitForAsync(new() { State = WaitForSelectorState.Visible });
        Assert.Equal("cancelled", await error.InnerTextAsync());
        Assert.False(await page.Locator("#generate").IsDisabledAsync());
        await WaitForPending(0);
        Assert.Equal(0, await page.Locator("#gallery img").CountAsync());
    }
}
