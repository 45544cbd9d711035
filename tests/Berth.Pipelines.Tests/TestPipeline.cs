
namespace Berth.Pipelines.Tests;

/// <summary>A temp folder with a pipelines file and a state folder; runs pipelines for real (processes, SQLite, files).</summary>
internal sealed class TestPipeline : IDisposable
{
    public TestPipeline(string yaml)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("berth-pipelines-test-").FullName;
        State = Path.Combine(Directory, ".berth");
        File = Path.Combine(Directory, "berth.yaml");
        // @DIR@ in the YAML stands for the test folder, for steps in isolated workspaces.
        System.IO.File.WriteAllText(File, yaml.Replace("@DIR@", Directory, StringComparison.Ordinal));
    }

    /// <summary>The one pipeline <c>ci</c>, whose keys (<c>on:</c>, <c>env:</c>, <c>jobs:</c>, ...) are <paramref name="keys"/> (YAML,
    /// unindented).</summary>
    public static TestPipeline Ci(string keys) => new("pipelines:\n  ci:\n" + Indent(keys, 4));

    /// <summary>A pipeline <c>ci</c> of one job <c>a</c> whose <c>steps:</c> are <paramref name="steps"/> (a YAML list, unindented).</summary>
    public static TestPipeline OneJob(string steps) => Ci("jobs:\n  a:\n    steps:\n" + Indent(steps, 4));

    private static string Indent(string yaml, int spaces) =>
        string.Join('\n', yaml.Split('\n').Select(l => l.Length == 0 ? l : new string(' ', spaces) + l)) + "\n";

    public string Directory { get; }

    public string State { get; }

    public string File { get; }

    public PipelineEngineOptions Options => new() { StateDirectory = State, KillGrace = TimeSpan.FromSeconds(2), PollInterval = TimeSpan.FromMilliseconds(50), RolloutPollInterval = TimeSpan.FromMilliseconds(50) };

    public PipelineDefinition Parse(string name = "ci")
    {
        var result = PipelineParser.ParseFile(File);
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        return result.Find(name) ?? throw new InvalidOperationException($"no pipeline {name}");
    }

    public Task<RunResult> RunAsync(string name = "ci", RunRequest? request = null, PipelineEngineOptions? options = null, CancellationToken cancellationToken = default) =>
        new PipelineEngine(options ?? Options, TimeProvider.System).RunAsync(Parse(name), request ?? new RunRequest(), cancellationToken);

    /// <summary>Runs the pipeline and asserts that it succeeded; when it did not, the message carries the run's log.</summary>
    public async Task<RunResult> RunSucceededAsync(string name = "ci", RunRequest? request = null)
    {
        var result = await RunAsync(name, request);
        Assert.True(result.Status == RunStatus.Succeeded, $"run {result.RunId} ended {result.Status}, not {RunStatus.Succeeded}; its log:\n{string.Join('\n', Logs(result.RunId))}");
        return result;
    }

    public RunStore Store() => new(Path.Combine(State, "pipelines.db"));

    public Dictionary<string, string> Jobs(long runId)
    {
        using var store = Store();
        return store.GetJobs(runId).ToDictionary(j => j.Key, j => j.Status);
    }

    public List<StepRecord> Steps(long runId)
    {
        using var store = Store();
        return store.GetSteps(runId).ToList();
    }

    public List<string> Logs(long runId, string? job = null)
    {
        using var store = Store();
        return store.GetLogs(runId, job).Select(l => l.Text).ToList();
    }

    public string Read(string relative) => System.IO.File.ReadAllText(Path.Combine(Directory, relative));

    public bool Exists(string relative) => System.IO.File.Exists(Path.Combine(Directory, relative));

    public void Write(string relative, string text)
    {
        var path = Path.Combine(Directory, relative);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllText(path, text);
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
