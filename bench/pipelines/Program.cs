// Per-step overhead: N steps that run `true`, through Berth's engine (argv, own process group, masked output,
// SQLite run store) against a bash script running the same N commands, alternating, same run.
//   dotnet run -c Release --project bench/pipelines -- [steps=200] [rounds=7]
// Expressions (BenchmarkDotNet): parse + evaluate of 10,000-term expressions.
//   dotnet run -c Release --project bench/pipelines -- expressions [BenchmarkDotNet options]
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Execution;

if (args is ["jint-check"])
{
    // Does the peer survive 10,000 terms (a left-deep tree) without a stack overflow?
    var engine = new Jint.Engine().SetValue("env", new Dictionary<string, object> { ["NAME"] = "mona" });
    var text = string.Join(" || ", Enumerable.Repeat("env.NAME == 'octocat'", 9_999)) + " || env.NAME == 'mona'";
    var watch = Stopwatch.StartNew();
    Console.WriteLine($"jint: {engine.Evaluate(text)} in {watch.Elapsed.TotalMilliseconds:0.0} ms");
    return 0;
}

if (args is ["expressions-cpu", ..])
{
    // The same work as ExpressionBenchmarks.ParseAndEvaluate*, timed in CPU time of this process as well as wall time:
    // on a shared, loaded machine the wall time mostly measures waiting for a core.
    var context = new Berth.Pipelines.Expressions.ExpressionContext { Env = new Dictionary<string, string> { ["NAME"] = "mona", ["EMPTY"] = "" } };
    var cases = new (string Name, string Text)[]
    {
        ("||, 10,000 terms", string.Join(" || ", Enumerable.Repeat("env.NAME == 'octocat'", 9_999)) + " || env.NAME == 'Mona'"),
        ("&&, 10,000 terms", string.Join(" && ", Enumerable.Repeat("startsWith(env.NAME, 'M')", 10_000))),
        ("mixed, 10,000 terms", string.Join(" || ", Enumerable.Range(0, 5_000).Select(i => $"(env.EMPTY && {i} < 0)")) + " || !(env.NAME != 'mona')"),
    };
    var self = Process.GetCurrentProcess();
    Console.WriteLine("| parse + evaluate | CPU ms per op (median of 9 rounds of 20) | wall ms per op (median) |");
    Console.WriteLine("|---|---|---|");
    foreach (var (name, text) in cases)
    {
        for (var w = 0; w < 20; w++)
        {
            Berth.Pipelines.Expressions.ExpressionEvaluator.Evaluate(Berth.Pipelines.Expressions.ExpressionParser.Parse(text), context);
        }

        var cpu = new List<double>();
        var wall = new List<double>();
        for (var round = 0; round < 9; round++)
        {
            self.Refresh();
            var cpuStart = self.TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < 20; i++)
            {
                Berth.Pipelines.Expressions.ExpressionEvaluator.Evaluate(Berth.Pipelines.Expressions.ExpressionParser.Parse(text), context);
            }

            wall.Add(watch.Elapsed.TotalMilliseconds / 20);
            self.Refresh();
            cpu.Add((self.TotalProcessorTime - cpuStart).TotalMilliseconds / 20);
        }

        Console.WriteLine($"| {name} | {cpu.Order().ElementAt(4):0.00} | {wall.Order().ElementAt(4):0.00} |");
    }

    return 0;
}

if (args is ["expressions", .. var rest])
{
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromTypes([typeof(Berth.Bench.Pipelines.ExpressionBenchmarks), typeof(Berth.Bench.Pipelines.ExpressionPeerBenchmarks)]).Run(rest);
    return 0;
}

var steps = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 7;
var dir = Directory.CreateTempSubdirectory("berth-bench-pipelines-").FullName;
try
{
    var yaml = new StringBuilder("pipelines:\n  bench:\n    jobs:\n      steps:\n        steps:\n");
    for (var i = 0; i < steps; i++)
    {
        yaml.Append("          - run: [true]\n");
    }

    File.WriteAllText(Path.Combine(dir, "berth.yaml"), yaml.ToString());
    var script = Path.Combine(dir, "steps.sh");
    File.WriteAllText(script, "set -e\n" + string.Concat(Enumerable.Repeat("/usr/bin/true\n", steps)));
    var builtin = Path.Combine(dir, "builtin.sh");
    File.WriteAllText(builtin, "set -e\n" + string.Concat(Enumerable.Repeat("true\n", steps)));

    var parsed = PipelineParser.ParseFile(Path.Combine(dir, "berth.yaml"));
    var pipeline = parsed.Find("bench") ?? throw new InvalidOperationException(string.Join("\n", parsed.Diagnostics));
    var engine = new PipelineEngine(new PipelineEngineOptions { StateDirectory = Path.Combine(dir, ".berth") }, TimeProvider.System);

    // Warm-up: JIT, SQLite, page cache.
    await engine.RunAsync(pipeline, new RunRequest(), CancellationToken.None);
    Shell(script);

    var berth = new List<double>();
    var shell = new List<double>();
    var shellBuiltin = new List<double>();
    for (var r = 0; r < rounds; r++)
    {
        var watch = Stopwatch.StartNew();
        var result = await engine.RunAsync(pipeline, new RunRequest(), CancellationToken.None);
        berth.Add(watch.Elapsed.TotalMilliseconds / steps);
        if (result.Status != "succeeded")
        {
            throw new InvalidOperationException($"bench run {result.RunId} {result.Status}");
        }

        shell.Add(Shell(script) / steps);
        shellBuiltin.Add(Shell(builtin) / steps);
    }

    double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
    var overhead = Median(berth) - Median(shell);
    Console.WriteLine($"steps per run: {steps}, rounds: {rounds}, cores: {Environment.ProcessorCount}, .NET {Environment.Version}");
    Console.WriteLine();
    Console.WriteLine("| per step (median of rounds) | ms |");
    Console.WriteLine("|---|---|");
    Console.WriteLine($"| berth: `run: true` step | {Median(berth):0.00} |");
    Console.WriteLine($"| bash script: `/usr/bin/true` (fork+exec per line) | {Median(shell):0.00} |");
    Console.WriteLine($"| bash script: `true` (builtin, no process) | {Median(shellBuiltin):0.000} |");
    Console.WriteLine($"| **berth overhead over the script** | **{overhead:0.00}** |");
    Console.WriteLine();
    Console.WriteLine($"berth rounds (ms/step): {string.Join(", ", berth.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}");
    Console.WriteLine($"script rounds (ms/step): {string.Join(", ", shell.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}");
    return overhead < 5 ? 0 : 1;
}
finally
{
    Directory.Delete(dir, recursive: true);
}

static double Shell(string script)
{
    var watch = Stopwatch.StartNew();
    using var process = Process.Start(new ProcessStartInfo("bash", [script]) { UseShellExecute = false })!;
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{script} exited {process.ExitCode}");
    }

    return watch.Elapsed.TotalMilliseconds;
}
