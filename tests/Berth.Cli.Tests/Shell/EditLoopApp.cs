namespace Berth.Cli.Tests.Shell;

/// <summary>The app of the edit-loop tests (build, watch, Hot Reload) that run the real <c>berth</c>: a temporary app folder, a
/// fixed port for its <c>web</c> service, the app registry (XDG_STATE_HOME) in a folder of its own outside the app's (a file
/// written there is not the build's), and on dispose the app taken down and both folders deleted.</summary>
internal sealed class EditLoopApp : IAsyncDisposable
{
    private readonly TempFolder _stateHome;

    public EditLoopApp(string prefix)
    {
        Dir = Directory.CreateTempSubdirectory(prefix).FullName;
        _stateHome = new TempFolder(prefix + "xdg-");
    }

    /// <summary>The app's folder.</summary>
    public string Dir { get; }

    /// <summary>web's fixed port (its mesh listener).</summary>
    public int Port { get; } = Ports.Free();

    /// <summary>A <c>berth</c> runner in the app's folder with the app registry outside it.</summary>
    public BerthCli Cli => new(Dir) { Environment = { ["XDG_STATE_HOME"] = _stateHome.Path } };

    /// <summary>Writes <c>berth.yaml</c>: app <paramref name="name"/> whose <c>web</c> service has <paramref name="web"/> (its keys
    /// indented 4) on the fixed port, Ready when / answers, and rolled one new replica before an old one stops, so no request
    /// fails in a swap; then <paramref name="more"/> (more services, indented 2).</summary>
    public Task WriteSpecAsync(string name, string web, string more = "", string update = "{max_surge: 1, max_unavailable: 0}") => File.WriteAllTextAsync(Path.Combine(Dir, "berth.yaml"), $$"""
        name: {{name}}
        services:
          web:
        {{web}}
            endpoints:
              http: {{Port}}
            probes:
              readiness: {http: /, period: 500ms}
            update: {{update}}
            stop_grace_period: 2s
        {{more}}
        """);

    /// <summary>GET / through web's fixed port.</summary>
    public async Task<string> GetAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync($"http://127.0.0.1:{Port}/");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cli.DownAsync();
        }
        finally
        {
            Directory.Delete(Dir, recursive: true);
            _stateHome.Dispose();
        }
    }
}
