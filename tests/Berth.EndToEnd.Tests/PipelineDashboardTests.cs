namespace Berth.EndToEnd.Tests;

/// <summary>Issue #16's pipelines view in a real Chromium: a run of the real <c>berth pipeline run</c> shows its job graph as
/// <c>needs:</c> draws it, with each job in the column after the last job it needs and an arrow per need.</summary>
[Collection(RealProcesses.Name)]
public sealed class PipelineDashboardTests
{
    [BrowserFact]
    public async Task Dashboard_PipelineRun_DrawsTheJobGraphFromNeeds()
    {
        var home = Directory.CreateTempSubdirectory("berth-pipeline-dashboard-").FullName;
        File.WriteAllText(Path.Combine(home, "berth.yaml"), $$"""
            name: dagdash
            services:
              web:
                run: {{TestHttpServer.Yaml}}
                endpoints:
                  http: {{Ports.Free()}}
            pipelines:
              ci:
                jobs:
                  build:
                    steps: [{run: echo built}]
                  unit:
                    needs: build
                    strategy:
                      matrix: {shard: [1, 2]}
                    steps: [{run: echo unit}]
                  lint:
                    needs: build
                    steps: [{run: echo lint}]
                  package:
                    needs: [unit, lint]
                    steps: [{run: echo package}]
                  docs:
                    steps: [{run: echo docs}]
            """);
        var berth = new BerthCli(home);
        try
        {
            await using var dashboard = await SignedInDashboard.OpenAsync(berth);
            await berth.OkAsync("pipeline", "run", "ci");
            var page = dashboard.Page;
            await page.GotoAsync(dashboard.Url + "#pipelines?run=1");
            var dag = page.Locator("#dag");
            await Poll.UntilAsync(async () => await dag.Locator(".job").CountAsync() == 6 && await dag.Locator("path.dag-edge").CountAsync() == 6,
                TimeSpan.FromSeconds(30), "the run's 6 jobs (unit as 2 matrix instances) and 6 need edges in the pipelines view");

            // Columns: what needs nothing, then what needs it, then what needs those.
            var stages = await dag.Locator(".stage").EvaluateAllAsync<string[]>("ss => ss.map(s => [...s.querySelectorAll('.job')].map(j => j.dataset.id).sort().join(' '))");
            Assert.Equal(["build docs", "lint unit unit", "package"], stages);
            var edges = (await dag.Locator("path.dag-edge").EvaluateAllAsync<string[]>("ps => ps.map(p => p.dataset.edge)")).Order(StringComparer.Ordinal);
            var unit = (await dag.Locator(".job[data-id='unit']").EvaluateAllAsync<string[]>("js => js.map(j => j.dataset.job)")).Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(2, unit.Length);
            Assert.Equal(new[] { "build->lint", $"build->{unit[0]}", $"build->{unit[1]}", "lint->package", $"{unit[0]}->package", $"{unit[1]}->package" }.Order(StringComparer.Ordinal), edges);
            Assert.All(await dag.Locator(".job").AllInnerTextsAsync(), t => Assert.Contains("succeeded", t, StringComparison.Ordinal));

            // Each arrow runs from the right edge of the needed job to the left edge of the job that needs it.
            var geometry = await page.EvaluateAsync<string[]>("""
                () => {
                  const dag = document.getElementById('dag'), box = dag.getBoundingClientRect();
                  return [...dag.querySelectorAll('path.dag-edge')].map(p => {
                    const [from, to] = p.dataset.edge.split('->').map(k => [...dag.querySelectorAll('.job')].find(j => j.dataset.job === k).getBoundingClientRect());
                    const start = p.getPointAtLength(0), end = p.getPointAtLength(p.getTotalLength());
                    return [start.x - (from.right - box.left), start.y - (from.top + from.height / 2 - box.top), end.x - (to.left - box.left), end.y - (to.top + to.height / 2 - box.top)]
                      .map(v => Math.abs(v) < 1.5 ? 'ok' : v.toFixed(1)).join(' ');
                  });
                }
                """);
            Assert.All(geometry, g => Assert.Equal("ok ok ok ok", g));
            await page.ScreenshotAsync(new() { Path = Path.Combine(ShopForDashboard.ArtifactsDirectory(), "pipeline-dag.png"), FullPage = true });
        }
        finally
        {
            await berth.DownAsync();
            Directory.Delete(home, recursive: true);
        }
    }
}
