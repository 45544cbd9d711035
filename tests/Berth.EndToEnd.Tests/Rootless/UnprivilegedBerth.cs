using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Berth.EndToEnd.Tests.Rootless;

/// <summary>
/// The real <c>berth</c> run as a normal user (uid 65534, "nobody") through <c>setpriv</c>, as issue #18 asks: the test
/// itself runs as root (to set the machine up as root left it, and to look at what the user did), berth never does.
/// berth's build output is copied to a folder every user may read, the app and a HOME (with TMPDIR and the .NET CLI
/// home inside it) belong to the user, and the environment is a normal user's, nothing inherited from root.
/// </summary>
internal sealed class UnprivilegedBerth : IDisposable
{
    public const int Uid = 65534;

    public UnprivilegedBerth(string name)
    {
        Root = Path.Combine("/tmp", $"berth-rootless-{name}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(Root);
        Bin = Path.Combine(Root, "bin");
        Home = Path.Combine(Root, "home");
        App = Path.Combine(Root, "app");
        CopyFolder(AppContext.BaseDirectory, Bin, _ => true);
        Directory.CreateDirectory(Path.Combine(Home, "tmp"));
        Directory.CreateDirectory(App);
        AllowEveryoneToRead(Root);
        Chown(Home);
        Chown(App);
    }

    /// <summary>Whether this test process can switch to the unprivileged user (it must be root, with setpriv).</summary>
    public static string? CannotRunBecause =>
        Berth.Runtime.Capabilities.HostUser.IsRoot ? (File.Exists("/usr/bin/setpriv") ? null : "setpriv (util-linux) is not installed")
            : "the test runs berth as uid 65534 through setpriv, which needs the test itself to run as root (CI does)";

    public string Root { get; }

    public string Bin { get; }

    public string Home { get; }

    /// <summary>The app folder, owned by the user: the spec, and Berth's state in <c>.berth/</c>.</summary>
    public string App { get; }

    public string State => Path.Combine(App, ".berth");

    /// <summary>Extra environment for every berth run (e.g. BERTH_CGROUP_SUBTREE).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    public sealed record Result(int Code, string Out, string Err)
    {
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        public override string ToString() => $"exit {Code}\nstdout:\n{Out}\nstderr:\n{Err}";
    }

    /// <summary>Copies a sample into the app folder (without build output or state) and gives it to the user.</summary>
    public void CopySample(string sample)
    {
        var from = Path.Combine(RepoRoot(), "samples", sample);
        CopyFolder(from, App, rel => !rel.Split('/').Any(s => s is "out" or "obj" or "bin" or ".berth"));
        Chown(App);
    }

    public void WriteSpec(string yaml)
    {
        File.WriteAllText(Path.Combine(App, "berth.yaml"), yaml);
        Chown(App);
    }

    public async Task<Result> RunAsync(params string[] args)
    {
        var (exit, stdout, stderr) = await ChildProcess.RunAsync(StartInfo(args), TimeSpan.FromMinutes(4), $"berth {string.Join(' ', args)} (as uid {Uid})");
        return new Result(exit, stdout, stderr);
    }

    /// <summary>Starts a long-running berth (foreground <c>up</c>) whose output lines are collected as they come.</summary>
    public Foreground Start(params string[] args)
    {
        var info = StartInfo(args);
        var p = Process.Start(info)!;
        var run = new Foreground(p);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { run.Out.Enqueue(e.Data); } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { run.Err.Enqueue(e.Data); } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return run;
    }

    public sealed class Foreground(Process process) : IDisposable
    {
        public Process Process => process;

        public ConcurrentQueue<string> Out { get; } = new();

        public ConcurrentQueue<string> Err { get; } = new();

        public string Transcript => $"stderr:\n{string.Join('\n', Err)}\nstdout (last 40):\n{string.Join('\n', Out.TakeLast(40))}";

        /// <summary>Ctrl-C: SIGINT to berth (setpriv execs it, so the pid is berth's own).</summary>
        public void Interrupt()
        {
            using var kill = Process.Start("kill", ["-INT", process.Id.ToString(CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }

        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }

            process.Dispose();
        }
    }

    /// <summary>GET on the control plane's API with its token, read by root from the user's state folder.</summary>
    public async Task<JsonElement> ApiGetAsync(string path)
    {
        using var address = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(State, "api.json")));
        var url = address.RootElement.GetProperty("url").GetString()!;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", (await File.ReadAllTextAsync(Path.Combine(State, "api-token"))).Trim());
        using var response = await http.GetAsync(new Uri(url + path));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Processes of the user that live in this test's folders (by working directory or command line).</summary>
    public IReadOnlyList<string> LiveProcesses()
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (!File.ReadLines(Path.Combine(dir, "status")).Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == Uid.ToString(CultureInfo.InvariantCulture)))
                {
                    continue;
                }

                var cwd = new DirectoryInfo(Path.Combine(dir, "cwd")).LinkTarget ?? "";
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cwd.StartsWith(Root, StringComparison.Ordinal) || cmdline.Contains(Root, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline.Trim()}");
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // It ended while we looked.
            }
        }

        return found;
    }

    /// <summary>Files the user owns under the shared writable places of the machine (<c>/tmp</c>, <c>/var/tmp</c>,
    /// <c>/dev/shm</c>, <c>/run</c>), outside this test's folder: Berth must keep to the app folder and the user's own
    /// directories.</summary>
    public IReadOnlySet<string> UserFilesOutside()
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var top in new[] { "/tmp", "/var/tmp", "/dev/shm", "/run" })
        {
            var info = new ProcessStartInfo("find") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { top, "-xdev", "-user", Uid.ToString(CultureInfo.InvariantCulture), "-not", "-path", $"{Root}*", "-print" })
            {
                info.ArgumentList.Add(a);
            }

            using var find = Process.Start(info)!;
            var output = find.StandardOutput.ReadToEnd();
            find.StandardError.ReadToEnd();
            find.WaitForExit();
            found.UnionWith(output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("/tmp/berth-rootless-", StringComparison.Ordinal)));
        }

        return found;
    }

    public void Dispose()
    {
        foreach (var process in LiveProcesses())
        {
            var pid = int.Parse(process[..process.IndexOf(':', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A process that was still ending held a file; /tmp is cleaned anyway.
        }
    }

    private ProcessStartInfo StartInfo(string[] args)
    {
        var info = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = App,
        };
        foreach (var a in (string[])["--reuid", $"{Uid}", "--regid", $"{Uid}", "--clear-groups", "--", Dotnet(), Path.Combine(Bin, "berth.dll"), .. args])
        {
            info.ArgumentList.Add(a);
        }

        // A normal user's environment, nothing of root's: HOME, TMPDIR and the .NET CLI's home are the user's own.
        info.Environment.Clear();
        info.Environment["PATH"] = $"{Path.GetDirectoryName(Dotnet())}:/usr/local/bin:/usr/bin:/bin";
        info.Environment["HOME"] = Home;
        info.Environment["DOTNET_CLI_HOME"] = Home;
        info.Environment["TMPDIR"] = Path.Combine(Home, "tmp");
        info.Environment["USER"] = "nobody";
        info.Environment["NO_COLOR"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        if (System.Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } dotnetRoot)
        {
            info.Environment["DOTNET_ROOT"] = dotnetRoot;
        }

        foreach (var (k, v) in Environment)
        {
            info.Environment[k] = v;
        }

        return info;
    }

    /// <summary>The dotnet that runs these tests (the SDK's muxer), which the user must be able to run too.</summary>
    private static string Dotnet()
    {
        var host = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (host is { Length: > 0 } && File.Exists(host))
        {
            return host;
        }

        foreach (var dir in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var candidate = Path.Combine(dir, "dotnet");
            if (File.Exists(candidate))
            {
                return new FileInfo(candidate).LinkTarget is { } target ? Path.GetFullPath(target, dir) : candidate;
            }
        }

        throw new InvalidOperationException("no dotnet found (DOTNET_HOST_PATH or PATH)");
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException($"no Berth.slnx above {AppContext.BaseDirectory}");
    }

    private static void CopyFolder(string from, string to, Func<string, bool> include)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(from, file);
            if (!include(relative))
            {
                continue;
            }

            var target = Path.Combine(to, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    internal static void Chown(string path) => Run("chown", "-R", $"{Uid}:{Uid}", path);

    private static void AllowEveryoneToRead(string path) => Run("chmod", "-R", "a+rX", path);

    internal static void Run(string command, params string[] args)
    {
        var info = new ProcessStartInfo(command) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{command} {string.Join(' ', args)} failed ({p.ExitCode}): {err}");
    }
}
