using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Tests.Support;
using Berth.Testing;
using Microsoft.Playwright;

namespace Berth.EndToEnd.Tests;

/// <summary>The shop sample as processes (a copy on free ports, with a secret in the api's environment), brought up once by
/// the real <c>berth up -d</c> for the dashboard tests.</summary>
public sealed partial class ShopForDashboard : IAsyncLifetime
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    public string Secret { get; } = "shh-" + Guid.NewGuid().ToString("N");

    public Dictionary<string, int> Ports { get; } = new()
    {
        ["frontend"] = Testing.Ports.Free(), ["api"] = Testing.Ports.Free(), ["worker"] = Testing.Ports.Free(), ["db"] = Testing.Ports.Free(),
    };

    internal BerthCli Berth { get; } = new(Directory.CreateTempSubdirectory("berth-dashboard-").FullName);

    /// <summary>The control plane's address (the dashboard is served at its root).</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>The login link <c>berth up</c> printed.</summary>
    public string PrintedLink { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Repository.CopySample("samples/shop", Berth.Directory);
        var spec = File.ReadAllText(Path.Combine(Berth.Directory, "berth.yaml"));
        foreach (var (service, fixedPort) in new[] { ("frontend", "7100"), ("api", "7200"), ("worker", "7300"), ("db", "7400") })
        {
            Assert.Contains(fixedPort, spec, StringComparison.Ordinal);
            spec = spec.Replace(fixedPort, Ports[service].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        }

        // A secret the api gets in its environment: it must show as *** and its value nowhere.
        spec = spec.Replace("name: shop\n", $"name: shop{Guid.NewGuid().ToString("N")[..6]}\n", StringComparison.Ordinal)
            .Replace("  api:\n", $"  api:\n    environment: {{SHOP_API_TOKEN: \"{Secret}\"}}\n    secret_env: [SHOP_API_TOKEN]\n", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(Berth.Directory, "berth.yaml"), spec);

        var up = await Berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed: {up}");
        var link = LinkPattern().Match(up.Err);
        Assert.True(link.Success, $"berth up printed no dashboard link: {up}");
        PrintedLink = link.Value;
        Url = new Uri(new Uri(PrintedLink).GetLeftPart(UriPartial.Authority) + "/");
        await Poll.UntilAsync(async () => (await ReplicasAsync()).Count(r => r.GetProperty("phase").GetString() == "ready") == 6, Wait,
            "6 Ready replicas (frontend 1, api 2, worker 2, db 1)");
    }

    public async Task DisposeAsync()
    {
        await Berth.DownAsync();
        try
        {
            Directory.Delete(Berth.Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public async Task<List<JsonElement>> ReplicasAsync()
    {
        var ps = await Berth.RunAsync("ps", "-o", "json");
        Assert.True(ps.Code == 0, $"berth ps failed: {ps}");
        using var doc = JsonDocument.Parse(ps.Out);
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>A fresh one-time link, as <c>berth dashboard</c> prints it.</summary>
    public async Task<string> NewLinkAsync()
    {
        var r = await Berth.RunAsync("dashboard");
        Assert.True(r.Code == 0, $"berth dashboard failed: {r}");
        return r.Out.Trim();
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/login\?code=[0-9a-f]+")]
    internal static partial Regex LinkPattern();

    public static string ArtifactsDirectory()
    {
        var dir = Repository.Path("artifacts/dashboard");
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>Issue 16's acceptance in a real Chromium (Debian's, through Playwright's ExecutablePath): sign in through the printed
/// link, watch the shop live, act on it, and find no secret anywhere the browser received.</summary>
[Collection(RealProcesses.Name)]
public sealed class DashboardTests(ShopForDashboard shop) : IClassFixture<ShopForDashboard>
{
    /// <summary>Records every server-sent message the page receives, so the test can search them for the secret.</summary>
    private const string RecordSse = """
        (() => {
          window.__sse = [];
          const Original = window.EventSource;
          window.EventSource = function (url, init) {
            const es = new Original(url, init);
            const add = es.addEventListener.bind(es);
            es.addEventListener = (type, fn, opts) => add(type, e => { window.__sse.push(e.data); fn(e); }, opts);
            return es;
          };
        })();
        """;

    [BrowserFact]
    public async Task Dashboard_ShopInChromium_LiveViewsActionsTracesGraphAndNoSecret()
    {
        var artifacts = ShopForDashboard.ArtifactsDirectory();
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await Chromium.LaunchAsync(playwright);
        await using var context = await Chromium.NewContextAsync(browser);
        await context.AddInitScriptAsync(RecordSse);
        var page = await context.NewPageAsync();
        var captured = new List<string>();
        page.Response += async (_, response) =>
        {
            if (response.Headers.TryGetValue("content-type", out var type) && !type.StartsWith("text/event-stream", StringComparison.Ordinal))
            {
                try
                {
                    var text = await response.TextAsync();
                    lock (captured)
                    {
                        captured.Add(text);
                    }
                }
                catch (PlaywrightException)
                {
                    // A response the page navigated away from has no body to read any more.
                }
            }
        };
        var html = new List<string>();

        // Sign in through the link berth up printed: lands on Resources with every replica.
        // Generous deadlines: the machine may be busy; a page still not there says where it is.
        page.SetDefaultTimeout(60_000);
        var signIn = await page.GotoAsync(shop.PrintedLink);
        Assert.True(signIn?.Status == 200, $"the printed link led to HTTP {signIn?.Status} at {page.Url}: {await page.ContentAsync()}");
        try
        {
            await page.WaitForURLAsync(shop.Url.ToString(), new() { WaitUntil = WaitUntilState.DOMContentLoaded });
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"the sign-in page did not lead to the dashboard; at {page.Url}: {await page.ContentAsync()}", e);
        }

        var replicas = await shop.ReplicasAsync();
        await Poll.UntilAsync(async () => await page.Locator("#replicas tbody tr").CountAsync() == replicas.Count, TimeSpan.FromSeconds(30),
            $"{replicas.Count} replica rows in Resources");
        foreach (var r in replicas)
        {
            var id = r.GetProperty("id").GetString()!;
            Assert.Equal(1, await page.Locator($"#replicas tr[data-key='{id}']").CountAsync());
        }

        await page.EvaluateAsync("window.__noReload = true");
        await Screenshot(page, artifacts, "resources", html);

        // Scale api to 3 from the page: 3 Ready without a reload.
        await page.Locator("#services tr[data-key='api'] [data-scale]").FillAsync("3");
        await page.Locator("#services tr[data-key='api'] button[data-do='scale']").ClickAsync();
        await Poll.UntilAsync(async () => await page.Locator("#services tr[data-key='api'] [data-ready]").GetAttributeAsync("data-ready") == "3",
            ShopForDashboard.Wait, "api showing 3 ready on the page");
        Assert.True(await page.EvaluateAsync<bool>("window.__noReload === true"), "the page reloaded");
        Assert.Equal(3, (await shop.ReplicasAsync()).Count(r => r.GetProperty("service").GetString() == "api" && r.GetProperty("phase").GetString() == "ready"));

        // kill -9 of a replica shows as a restart within 2 s.
        var victim = (await shop.ReplicasAsync()).First(r => r.GetProperty("service").GetString() == "worker");
        var victimId = victim.GetProperty("id").GetString()!;
        var restartsBefore = victim.GetProperty("restarts").GetInt32();
        var killed = Stopwatch.StartNew();
        Process.GetProcessById(victim.GetProperty("pid").GetInt32()).Kill();
        await Poll.UntilAsync(
            async () => int.Parse(await page.Locator($"#replicas tr[data-key='{victimId}'] [data-restarts]").GetAttributeAsync("data-restarts") ?? "0", CultureInfo.InvariantCulture) > restartsBefore,
            TimeSpan.FromSeconds(2), $"{victimId} showing a restart within 2 s of kill -9");
        var shownAfter = killed.Elapsed;
        await Screenshot(page, artifacts, "resources-after-kill", html);

        // Replica detail: the secret shows as ***.
        var api = (await shop.ReplicasAsync()).First(r => r.GetProperty("service").GetString() == "api" && r.GetProperty("phase").GetString() == "ready");
        await page.GotoAsync($"{shop.Url}#replica/{api.GetProperty("id").GetString()}");
        await page.Locator(".kv div", new() { HasTextString = "SHOP_API_TOKEN" }).First.WaitForAsync();
        Assert.Contains("SHOP_API_TOKEN</div><div>***</div>", await page.InnerHTMLAsync("#detail"), StringComparison.Ordinal);
        await Screenshot(page, artifacts, "replica", html);

        // Logs: live lines appear; an order placed now shows up, and a search finds it. The order carries our own trace id.
        await page.GotoAsync($"{shop.Url}#logs?service=api");
        await Poll.UntilAsync(async () => await page.Locator("#lines div").CountAsync() > 0, TimeSpan.FromSeconds(20), "log lines of the api");
        var item = "tea" + Guid.NewGuid().ToString("N")[..8];
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) })
        using (var order = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{shop.Ports["frontend"]}/orders?item={item}&qty=2"))
        {
            order.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray())[..16]}-01");
            using var placed = await http.SendAsync(order);
            Assert.True(placed.IsSuccessStatusCode, $"POST /orders through the frontend: {(int)placed.StatusCode} {await placed.Content.ReadAsStringAsync()}");
        }

        await Poll.UntilAsync(async () => (await page.InnerTextAsync("#lines")).Contains(item, StringComparison.Ordinal), TimeSpan.FromSeconds(20),
            $"the api's log line of order {item} appearing live");
        await page.FillAsync("#search", item);
        var shown = await page.Locator("#lines div").AllInnerTextsAsync();
        Assert.NotEmpty(shown);
        Assert.All(shown, l => Assert.Contains(item, l, StringComparison.Ordinal));
        await Screenshot(page, artifacts, "logs", html);

        // The order is one trace with a span of every hop: mesh → frontend, frontend, mesh → api, api, mesh → worker, worker, db.
        await page.GotoAsync($"{shop.Url}#trace/{traceId}");
        string[] hops = ["mesh:frontend", "app:frontend", "mesh:api", "app:api", "mesh:worker", "app:worker"];
        var seen = new List<string>();
        await Poll.UntilAsync(
            async () =>
            {
                seen = [.. (await page.Locator(".wf .row").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.source + ':' + r.dataset.service)")).Distinct()];
                return hops.All(seen.Contains) && await page.Locator(".wf .row", new() { HasTextString = "db INCR" }).CountAsync() > 0;
            },
            TimeSpan.FromSeconds(30), $"trace {traceId} with spans {string.Join(", ", hops)} and a db span (last seen: {string.Join(", ", seen)})");
        await page.Locator(".wf .row").First.ClickAsync();
        await Screenshot(page, artifacts, "trace", html);

        await page.GotoAsync($"{shop.Url}#traces");
        await page.Locator($"#traces tr[data-trace='{traceId}']").WaitForAsync(new() { Timeout = 10_000 });
        await Screenshot(page, artifacts, "traces", html);

        // The service graph: frontend → api → worker with non-zero req/s.
        await page.GotoAsync($"{shop.Url}#graph");
        foreach (var edge in new[] { "frontend->api", "api->worker" })
        {
            await Poll.UntilAsync(
                async () =>
                {
                    var cell = page.Locator($"#edges tr[data-edge='{edge}'] td.rps");
                    return await cell.CountAsync() == 1 && double.Parse(await cell.InnerTextAsync(), CultureInfo.InvariantCulture) > 0;
                },
                TimeSpan.FromSeconds(15), $"edge {edge} with non-zero req/s");
        }

        Assert.Equal(1, await page.Locator("svg.graph text.elabel[data-edge='frontend->api']").CountAsync());
        await Screenshot(page, artifacts, "graph", html);

        foreach (var v in new[] { "metrics", "rollouts", "pipelines" })
        {
            await page.GotoAsync($"{shop.Url}#{v}");
            var loaded = v switch { "metrics" => "#c-rps svg", "rollouts" => "#ro .panel", _ => "#runs tbody tr" };
            await page.Locator(loaded).First.WaitForAsync(new() { Timeout = 15_000 });
            await Screenshot(page, artifacts, v, html);
        }

        // Nothing the browser received carries the secret: pages, JSON, server-sent events.
        var sse = await page.EvaluateAsync<string[]>("window.__sse");
        Assert.NotEmpty(sse);
        string[] everything;
        lock (captured)
        {
            everything = [.. captured, .. html, .. sse];
        }

        Assert.Contains(everything, t => t.Contains("SHOP_API_TOKEN", StringComparison.Ordinal));
        Assert.DoesNotContain(everything, t => t.Contains(shop.Secret, StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(artifacts, "timings.txt"), $"kill -9 to restart shown: {shownAfter.TotalMilliseconds:0} ms\n");
    }

    [BrowserFact]
    public async Task Dashboard_WithoutCookieOrFromAnotherOrigin_Refused()
    {
        var url = shop.Url;
        using var anonymous = new HttpClient { BaseAddress = url };
        foreach (var path in new[] { "/", "/assets/app.js", "/dashboard/api/stream", "/dashboard/api/graph", "/dashboard/api/traces", "/dashboard/api/replicas/x", "/v1/services", "/v1/app" })
        {
            using var r = await anonymous.GetAsync(path);
            Assert.True(r.StatusCode == HttpStatusCode.Unauthorized, $"GET {path} without a cookie: {(int)r.StatusCode}");
        }

        using (var r = await anonymous.PostAsync("/v1/services/api/scale", Json(new { replicas = 1 })))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }

        // A code works once.
        var link = await shop.NewLinkAsync();
        var cookies = new CookieContainer();
        using var handler = new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false };
        using var signedIn = new HttpClient(handler) { BaseAddress = url };
        using (var first = await signedIn.GetAsync(link))
        {
            Assert.Equal(HttpStatusCode.SeeOther, first.StatusCode);
            Assert.Equal("/", first.Headers.Location?.ToString());
            var set = string.Join(";", first.Headers.GetValues("Set-Cookie"));
            Assert.Contains("httponly", set, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("samesite=strict", set, StringComparison.OrdinalIgnoreCase);
        }

        using (var again = await anonymous.GetAsync(link))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, again.StatusCode);
        }

        using (var page = await signedIn.GetAsync("/"))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        }

        var before = await shop.ReplicasAsync();
        // Signed in, but without the page's CSRF token, or from another origin: refused.
        using (var noToken = await signedIn.PostAsync("/v1/services/api/scale", Json(new { replicas = 1 })))
        {
            Assert.Equal(HttpStatusCode.Forbidden, noToken.StatusCode);
        }

        using (var crossOrigin = new HttpRequestMessage(HttpMethod.Post, "/v1/services/api/scale") { Content = Json(new { replicas = 1 }) })
        {
            crossOrigin.Headers.Add("Origin", "http://evil.example");
            using var r = await signedIn.SendAsync(crossOrigin);
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        }

        // And from a real browser: a page on another origin posts a form to the dashboard with the signed-in cookie jar.
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await Chromium.LaunchAsync(playwright);
        await using var context = await browser.NewContextAsync();
        var tab = await context.NewPageAsync();
        tab.SetDefaultTimeout(60_000);
        await tab.GotoAsync(await shop.NewLinkAsync());
        await tab.WaitForURLAsync(url.ToString(), new() { WaitUntil = WaitUntilState.DOMContentLoaded });
        var attackerPort = Testing.Ports.Free();
        using var attacker = new HttpListener();
        attacker.Prefixes.Add($"http://127.0.0.1:{attackerPort}/");
        attacker.Start();
        var serve = Task.Run(async () =>
        {
            var c = await attacker.GetContextAsync();
            var body = Encoding.UTF8.GetBytes($"""
                <!doctype html><form id="f" method="POST" action="{url}v1/services/api/scale"><input name="replicas" value="1"></form>
                <script>document.getElementById('f').submit()</script>
                """);
            c.Response.ContentType = "text/html";
            await c.Response.OutputStream.WriteAsync(body);
            c.Response.Close();
        });
        var posted = tab.WaitForResponseAsync(r => r.Url.EndsWith("/v1/services/api/scale", StringComparison.Ordinal));
        await tab.GotoAsync($"http://127.0.0.1:{attackerPort}/");
        await serve;
        var response = await posted;
        Assert.True(response.Status is 401 or 403, $"cross-site POST answered {response.Status}: {await response.TextAsync()}");

        var after = await shop.ReplicasAsync();
        Assert.Equal(before.Count(r => r.GetProperty("service").GetString() == "api"), after.Count(r => r.GetProperty("service").GetString() == "api"));
    }

    private static StringContent Json(object value) => new(JsonSerializer.Serialize(value), Encoding.UTF8, "application/json");

    private static async Task Screenshot(IPage page, string dir, string name, List<string> html)
    {
        await page.ScreenshotAsync(new() { Path = Path.Combine(dir, name + ".png"), FullPage = true });
        html.Add(await page.ContentAsync());
    }
}
