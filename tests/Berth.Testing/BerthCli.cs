using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Berth.Testing;

/// <summary>What a finished <c>berth</c> command printed and returned.</summary>
public sealed record CliResult(int Code, string Out, string Err)
{
    public override string ToString() => $"exit {Code}\nstdout:\n{Out}\nstderr:\n{Err}";
}

/// <summary>The one way tests run the real <c>berth</c> program (the berth.dll built beside the tests) in an app folder, as a
/// user would: one environment (no colours, none of the machine's BERTH_* or COMPOSE_PROFILES settings unless a test sets
/// them) and one timeout policy (a command that has not ended by its deadline is killed with its whole process tree, and
/// the failure says which command, in which folder, what it printed so far and what the test was waiting for).</summary>
public sealed class BerthCli(string directory)
{
    /// <summary>Generous: the two-core machine running the tests is shared and may be busy.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(3);

    public string Directory => directory;

    /// <summary>The app's state folder (<c>.berth</c> beside the spec).</summary>
    public string State => Path.Combine(directory, ".berth");

    /// <summary>Variables set for every command (a null value removes the variable from the inherited environment).</summary>
    public Dictionary<string, string?> Environment { get; } = [];

    /// <summary>Runs <c>berth args…</c> to its end.</summary>
    public Task<CliResult> RunAsync(params string[] args) => RunAsync(DefaultTimeout, args);

    public async Task<CliResult> RunAsync(TimeSpan timeout, params string[] args)
    {
        await using var process = Start(args);
        return await process.WaitAsync(timeout, "it to exit");
    }

    /// <summary>For a synchronous Dispose or a polling condition.</summary>
    public CliResult Run(params string[] args) => RunAsync(args).GetAwaiter().GetResult();

    /// <summary>Runs <c>berth args…</c> and asserts that it exits 0.</summary>
    public async Task<CliResult> OkAsync(params string[] args)
    {
        var result = await RunAsync(args);
        Assert.True(result.Code == 0, $"berth {string.Join(' ', args)} in {directory}: {result}");
        return result;
    }

    /// <summary>Runs <c>berth args…</c> to its end with <paramref name="input"/> on its stdin (then end of file), as
    /// <c>echo … | berth …</c>.</summary>
    public async Task<CliResult> PipeAsync(string input, params string[] args)
    {
        await using var process = Start(args, input);
        return await process.WaitAsync(DefaultTimeout, "it to exit");
    }

    /// <summary>Starts a long-running <c>berth</c> (a foreground <c>up</c>, a <c>pipeline run</c>) whose output the test watches;
    /// disposing it kills what is still running of its process tree.</summary>
    public BerthProcess Start(params string[] args) => Start(args, "");

    private BerthProcess Start(string[] args, string input)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "berth.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("BERTH_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        info.Environment.Remove("COMPOSE_PROFILES");
        info.Environment["NO_COLOR"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in Environment)
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        return new BerthProcess($"berth {string.Join(' ', args)} (in {directory})", Process.Start(info)!, input);
    }

    /// <summary><c>berth ps -o json</c>, asserted to succeed.</summary>
    public async Task<List<JsonElement>> PsAsync()
    {
        var result = await OkAsync("ps", "-o", "json");
        return [.. JsonDocument.Parse(result.Out).RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>How many replicas <c>berth ps</c> shows in phase <paramref name="phase"/>.</summary>
    public async Task<int> CountAsync(string phase) => (await PsAsync()).Count(r => r.GetProperty("phase").GetString() == phase);

    /// <summary><c>berth events -o json</c>, one element a line, asserted to succeed.</summary>
    public async Task<List<JsonElement>> EventsAsync()
    {
        var result = await OkAsync("events", "-o", "json");
        return [.. result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
    }

    /// <summary>The detached control plane's pid from api.json, or null when it is not there.</summary>
    public int? ControlPlanePid() => PidIn("api.json");

    /// <summary>The data plane's pid from <c>data-plane.json</c>, or null when it is not there.</summary>
    public int? DataPlanePid() => PidIn("data-plane.json");

    /// <summary>Kills the detached control plane with SIGKILL (the data plane, its own process, is left serving) and waits up to
    /// 20 s until it has exited (gone from /proc, or a zombie); returns its pid. <paramref name="which"/> names it in the
    /// timeout's message.</summary>
    public async Task<int> KillControlPlaneAsync(string which = "the control plane")
    {
        var pid = ControlPlanePid() ?? throw new InvalidOperationException($"no control plane pid in {Path.Combine(State, "api.json")}");
        Process.GetProcessById(pid).Kill();
        await Poll.UntilAsync(() => ProcFs.Read(pid) is null or { State: 'Z' }, TimeSpan.FromSeconds(20), $"{which} gone after SIGKILL");
        return pid;
    }

    // The "pid" of a JSON file in the state folder, or null while the file is missing, half written or has none.
    private int? PidIn(string file)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(State, file)));
            return doc.RootElement.GetProperty("pid").GetInt32();
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Starts the app detached (<c>berth up -d</c>) and waits until <paramref name="ready"/> replicas are Ready.</summary>
    public async Task UpDetachedAsync(int ready, TimeSpan? timeout = null)
    {
        await OkAsync("up", "-d");
        await Poll.UntilAsync(async () => await CountAsync("ready") == ready, timeout ?? TimeSpan.FromSeconds(90),
            $"{ready} Ready replicas after 'berth up -d' in {directory}");
    }

    /// <summary>Stops the app whatever state the test left it in: berth down, then SIGKILL to a control plane that is still
    /// there, then berth down again (which adopts and stops replicas left behind).</summary>
    public async Task DownAsync()
    {
        var pid = ControlPlanePid();
        try
        {
            await RunAsync("down");
        }
        finally
        {
            if (pid is { } id && System.IO.Directory.Exists($"/proc/{id}"))
            {
                try
                {
                    Process.GetProcessById(id).Kill();
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                {
                }

                await RunAsync("down");
            }
        }
    }
}

/// <summary>A running <c>berth</c>: its output as it comes, SIGINT (Ctrl-C), and a wait that kills its whole process tree and
/// says what it was waiting for when the deadline passes.</summary>
public sealed class BerthProcess : IAsyncDisposable
{
    private readonly string _what;
    private readonly Process _process;
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();
    private readonly Task _readers;

    internal BerthProcess(string what, Process process, string input)
    {
        _what = what;
        _process = process;
        _process.StandardInput.Write(input);
        _process.StandardInput.Close();
        _readers = Task.WhenAll(CopyAsync(process.StandardOutput, _out), CopyAsync(process.StandardError, _err));
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What it has written to stdout so far.</summary>
    public string Out
    {
        get
        {
            lock (_out)
            {
                return _out.ToString();
            }
        }
    }

    /// <summary>What it has written to stderr so far.</summary>
    public string Err
    {
        get
        {
            lock (_err)
            {
                return _err.ToString();
            }
        }
    }

    /// <summary>The complete lines of stdout so far.</summary>
    public IReadOnlyList<string> OutLines => Lines(Out);

    /// <summary>The complete lines of stderr so far.</summary>
    public IReadOnlyList<string> ErrLines => Lines(Err);

    /// <summary>Sends SIGINT, as Ctrl-C in a terminal does.</summary>
    public async Task InterruptAsync()
    {
        using var kill = Process.Start("kill", ["-INT", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    /// <summary>Waits for the exit and all output. Past <paramref name="timeout"/> it kills the process tree and fails with
    /// <paramref name="waitingFor"/>, the command and what it printed.</summary>
    public async Task<CliResult> WaitAsync(TimeSpan timeout, string waitingFor)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
            await _readers.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            var killed = KillTree();
            throw new TimeoutException(
                $"{_what}: waited {timeout.TotalSeconds:0.#}s for {waitingFor}; killed it and its process tree ({killed})\nstdout so far:\n{Out}\nstderr so far:\n{Err}");
        }

        return new CliResult(_process.ExitCode, Out, Err);
    }

    public async ValueTask DisposeAsync()
    {
        KillTree();
        await _readers.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _process.Dispose();
    }

    private string KillTree()
    {
        try
        {
            if (_process.HasExited)
            {
                return "it had exited";
            }

            _process.Kill(entireProcessTree: true);
            return "pid " + _process.Id.ToString(CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "it had exited";
        }
    }

    private static async Task CopyAsync(StreamReader reader, StringBuilder into)
    {
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer)) > 0)
        {
            lock (into)
            {
                into.Append(buffer, 0, n);
            }
        }
    }

    private static string[] Lines(string text)
    {
        var end = text.LastIndexOf('\n');
        return end < 0 ? [] : text[..end].Split('\n');
    }
}
