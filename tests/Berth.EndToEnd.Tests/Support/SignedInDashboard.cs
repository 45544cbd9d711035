using Microsoft.Playwright;

namespace Berth.EndToEnd.Tests.Support;

/// <summary>An app brought up by the real <c>berth up -d</c>, and a Chromium page signed in through the login link it printed.
/// Disposing it closes the browser; the test takes the app down (also when signing in failed).</summary>
internal sealed class SignedInDashboard : IAsyncDisposable
{
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private SignedInDashboard(IPlaywright playwright, IBrowser browser, IPage page, string url)
    {
        _playwright = playwright;
        _browser = browser;
        Page = page;
        Url = url;
    }

    public IPage Page { get; }

    /// <summary>The dashboard's address (the control plane's API root), ending in '/'.</summary>
    public string Url { get; }

    public static async Task<SignedInDashboard> OpenAsync(BerthCli berth)
    {
        var up = await berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed: {up}");
        var link = ShopForDashboard.LinkPattern().Match(up.Err);
        Assert.True(link.Success, $"berth up printed no dashboard link: {up}");
        var url = new Uri(link.Value).GetLeftPart(UriPartial.Authority) + "/";
        var playwright = await Playwright.CreateAsync();
        var browser = await Chromium.LaunchAsync(playwright);
        var context = await Chromium.NewContextAsync(browser);
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        await page.GotoAsync(link.Value);
        await page.WaitForURLAsync(url, new() { WaitUntil = WaitUntilState.DOMContentLoaded });
        return new SignedInDashboard(playwright, browser, page, url);
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
