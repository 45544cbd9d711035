using System.Text;
using System.Text.Json.Nodes;
using Berth.Testing.Kubernetes;

namespace Berth.EndToEnd.Tests;

/// <summary>Issue #19's "status and drift in the dashboard", in a real Chromium: an app brought up by the real <c>berth up -d</c>
/// with KUBECONFIG naming the stand-in API server; its Kubernetes view shows what <c>berth k8s status</c> and <c>berth k8s diff</c>
/// compute, before and after <c>berth k8s apply</c> and after another manager changes a field.</summary>
[Collection(RealProcesses.Name)]
public sealed class KubernetesDashboardTests
{
    private const string Deployment = "/apis/apps/v1/namespaces/team-a/deployments/web";

    [BrowserFact]
    public async Task Dashboard_KubernetesView_ShowsStatusDriftAndDiffAsTheCliComputesThem()
    {
        await using var cluster = await FakeApiServer.StartAsync();
        var home = Directory.CreateTempSubdirectory("berth-k8s-dashboard-").FullName;
        var secret = "tok-" + Guid.NewGuid().ToString("N");
        var port = Ports.Free();
        File.WriteAllText(Path.Combine(home, "berth.yaml"), $$"""
            name: k8sdash
            services:
              web:
                runtime: process
                image: example/web:1
                run: {{TestHttpServer.Yaml}}
                endpoints:
                  http: {{port}}
                environment: {WEB_TOKEN: "{{secret}}"}
                secret_env: [WEB_TOKEN]
            """);
        var berth = new BerthCli(home);
        berth.Environment["KUBECONFIG"] = cluster.WriteKubeconfig(home);
        try
        {
            await using var dashboard = await SignedInDashboard.OpenAsync(berth);
            var page = dashboard.Page;
            var url = dashboard.Url;
            var captured = new List<string>();
            page.Response += async (_, response) =>
            {
                if (response.Url.Contains("/dashboard/api/kubernetes", StringComparison.Ordinal))
                {
                    var text = await response.TextAsync();
                    lock (captured)
                    {
                        captured.Add(text);
                    }
                }
            };

            // Nothing applied yet: the workload is not on the cluster, and the diff adds every object (the Secret's values masked).
            await page.GotoAsync(url + "#kubernetes");
            var row = page.Locator("#k-status tr[data-object='deployment/web']");
            await Poll.UntilAsync(async () => await row.CountAsync() == 1, TimeSpan.FromSeconds(30), "deployment/web in the Kubernetes view's live state");
            Assert.Contains("not on the cluster (run berth k8s apply)", await row.InnerTextAsync(), StringComparison.Ordinal);
            Assert.Contains("apply would change 4 of 4 objects", await page.InnerTextAsync("#k-summary"), StringComparison.Ordinal);
            var secretDiff = await page.InnerTextAsync(".k-object[data-object='secret/web-env'] .diff");
            Assert.Contains("+  WEB_TOKEN: \"***\"", secretDiff, StringComparison.Ordinal);
            var where = await page.InnerTextAsync("#k-where");
            Assert.Contains($"cluster {cluster.Url}", where, StringComparison.Ordinal);
            Assert.Contains("(context fake), namespace team-a", where, StringComparison.Ordinal);

            // After berth k8s apply: healthy, exactly as `berth k8s status` says, and no diff.
            cluster.ScriptStatus("deployments", "web", FakeApiServer.DeploymentStatus(1, 1, 1, 1));
            await berth.OkAsync("k8s", "apply");
            var status = await berth.RunAsync("k8s", "status");
            var cliLine = status.Out.Split('\n').Single(l => l.StartsWith("deployment/web\t", StringComparison.Ordinal)).Split('\t');
            await page.ClickAsync("#k-go");
            await Poll.UntilAsync(async () => (await page.InnerTextAsync("#k-summary")).Contains("apply would change nothing", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
                "the view's diff to show nothing to change after berth k8s apply");
            Assert.Equal("ok", cliLine[1]);
            Assert.Equal(cliLine[2], await row.Locator("td.state").InnerTextAsync());
            Assert.Equal(1, await page.Locator("#k-drift td.empty").CountAsync());

            // Another manager scales the Deployment on the cluster: the view shows that drift, and the diff puts replicas back.
            cluster.EditAsOtherManager(Deployment, "kubectl-scale", d => d["spec"]!["replicas"] = 4,
                new JsonObject { ["f:spec"] = new JsonObject { ["f:replicas"] = new JsonObject() } });
            await page.ClickAsync("#k-go");
            var drift = page.Locator("#k-drift tr[data-object='deployment/web']");
            await Poll.UntilAsync(async () => await drift.CountAsync() == 1, TimeSpan.FromSeconds(30), "drift of deployment/web by kubectl-scale in the view");
            var driftText = await drift.InnerTextAsync();
            Assert.Contains("kubectl-scale", driftText, StringComparison.Ordinal);
            Assert.Contains(".spec.replicas", driftText, StringComparison.Ordinal);
            var deploymentDiff = await page.InnerTextAsync(".k-object[data-object='deployment/web'] .diff");
            Assert.Contains("-  replicas: 4\n+  replicas: 1", deploymentDiff, StringComparison.Ordinal);
            Assert.Contains("apply would change 1 of 4 objects", await page.InnerTextAsync("#k-summary"), StringComparison.Ordinal);
            var cliDrift = (await berth.RunAsync("k8s", "status")).Out;
            Assert.Contains("deployment/web\tdrift\tkubectl-scale (Update at ", cliDrift, StringComparison.Ordinal);
            await page.ScreenshotAsync(new() { Path = Path.Combine(ShopForDashboard.ArtifactsDirectory(), "kubernetes.png"), FullPage = true });

            // The secret, as it is and as the Secret object carries it (base64), is in nothing the view received.
            var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(secret));
            lock (captured)
            {
                Assert.NotEmpty(captured);
                Assert.DoesNotContain(captured, t => t.Contains(secret, StringComparison.Ordinal) || t.Contains(base64, StringComparison.Ordinal));
            }
        }
        finally
        {
            await berth.DownAsync();
            Directory.Delete(home, recursive: true);
        }
    }
}
