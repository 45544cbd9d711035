using System.Diagnostics;
using BenchmarkDotNet.Running;
using Berth.Bench.Spec;
using Berth.Core.Loading;

// --check: load each generated spec once and report, to make sure the benchmark measures a spec that loads cleanly.
// --write DIR: write the generated specs (e.g. to time `berth validate` or a peer's `docker compose config` on them).
if (args is ["--check", ..])
{
    foreach (var (name, text) in new[] { ("berth.yaml", SpecGenerator.BerthYaml(500)), ("compose.yaml", SpecGenerator.ComposeYaml(500)) })
    {
        var watch = Stopwatch.StartNew();
        var result = SpecLoader.LoadText(text, "/bench/" + name, new LoadOptions { Environment = new Dictionary<string, string>() });
        Console.WriteLine($"{name}: {result.Application?.Services.Length ?? 0} services, {result.Diagnostics.Count} diagnostics, first load {watch.Elapsed.TotalMilliseconds:0} ms (cold)");
        foreach (var d in result.Diagnostics.Take(5))
        {
            Console.WriteLine("  " + d);
        }
    }

    return;
}

if (args is ["--write", var dir])
{
    Directory.CreateDirectory(dir);
    File.WriteAllText(Path.Combine(dir, "berth.yaml"), SpecGenerator.BerthYaml(500));
    File.WriteAllText(Path.Combine(dir, "compose.yaml"), SpecGenerator.ComposeYaml(500));
    Console.WriteLine($"wrote {dir}/berth.yaml and {dir}/compose.yaml (500 services each)");
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(SpecLoadingBenchmarks).Assembly).Run(args);
