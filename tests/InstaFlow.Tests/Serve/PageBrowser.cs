// The system's Chromium driven by Playwright, for the web page tests: a missing browser fails the test with the install
// command (never a skip, which would hide a broken page); screenshots go to TestResults/ next to the test binaries.
using Microsoft.Playwright;

namespace InstaFlow.Tests.Serve;

internal sealed class PageBrowser : IAsyncDisposable
{
    private const string Chromium = "/usr/bin/chromium";
    private readonly IPlaywright _playwright;
    public IBrowser Browser { get; }

    private PageBrowser(IPlaywright playwright, IBrowser browser) { _playwright = playwright; Browser = browser; }

    public static async Task<PageBrowser> LaunchAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"{Chromium} not found: the web UI tests need Debian's chromium; install it with `apt-get update && apt-get install -y chromium` (.ci/run does this)");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        return new PageBrowser(playwright, browser);
    }

    /// <summary>A path under TestResults/ for a screenshot of that name.</summary>
    public static string Screenshot(string name)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "TestResults");
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.DisposeAsync();
        _playwright.Dispose();
    }
}
