using Microsoft.Playwright;

namespace Berth.EndToEnd.Tests.Support;

/// <summary>Debian's chromium through Playwright (Playwright cannot download its own browser builds here): headless, and without the
/// sandbox, which needs privileges a CI container lacks.</summary>
internal static class Chromium
{
    public static Task<IBrowser> LaunchAsync(IPlaywright playwright) => playwright.Chromium.LaunchAsync(new()
    {
        ExecutablePath = Environments.Chromium ?? throw new InvalidOperationException("BERTH_REQUIRE_BROWSER=1 but no chromium: run .ci/setup-browser.sh"),
        Headless = true,
        Args = ["--no-sandbox"],
    });

    /// <summary>A browser context with the window size the screenshots are taken at.</summary>
    public static Task<IBrowserContext> NewContextAsync(IBrowser browser) =>
        browser.NewContextAsync(new() { ViewportSize = new() { Width = 1500, Height = 950 } });
}
