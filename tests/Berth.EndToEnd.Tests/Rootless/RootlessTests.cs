using System.Net.Sockets;
using System.Text.Json;
using Berth.Testing;

namespace Berth.EndToEnd.Tests.Rootless;

/// <summary>A fact that runs berth as uid 65534: skips with the reason where the test cannot switch users, fails in CI.</summary>
public sealed class RootlessFactAttribute : FactAttribute
{
    public RootlessFactAttribute()
    {
        if (UnprivilegedBerth.CannotRunBecause is { } why && !Environments.Required("BERTH_REQUIRE_CGROUPS"))
        {
            Skip = why;
        }
    }
}

[CollectionDefinition("rootless", DisableParallelization = true)]
public sealed class RootlessCollection;

/// <summary>
/// Issue #18 end to end: the real <c>berth</c> as a normal user (uid 65534 through setpriv) on this machine's real
/// kernel (cgroup v1), after root has run Berth here, so <c>/sys/fs/cgroup/*/berth</c> exists and belongs to root.
/// </summary>
[Collection("rootless")]
[Trait("Category", "Rootless")]
public sealed class RootlessTests
{
    private const string Controllers = "/sys/fs/cgroup";

    private static string Cpu(string subtree) => Path.Combine(Controllers, "cpu", subtree);

    /// <summary>What berth prints about cgroups for uid 65534 here: the root-made berth/ cannot be used.</summary>
    private const string CgroupsLine =
        "cgroups: CPU and memory limits not enforced: cgroup v1 at /sys/fs/cgroup: uid 65534 may not create cgroups in /sys/fs/cgroup/cpu/berth (permission denied); " +
        "fix: run berth as root, or have root hand uid 65534 a subtree once (mkdir /sys/fs/cgroup/{cpu,cpuacct,memory}/berth-65534 and chown -R 65534 them) and set BERTH_CGROUP_SUBTREE=berth-65534";

    private const string NetworkNamespacesLine =
        "network-namespaces: usable: uid 65534 made a user namespace with its own network namespace (unshare --user --map-root-user --net); " +
        "process services with network: isolated run in pods; Docker services share the host network (the mesh cannot enter a container's namespace without root)";

    private static string LimitsLine(string service, string limits) =>
        $"limits not enforced for {service} ({limits}): cgroup v1 at /sys/fs/cgroup: uid 65534 may not create cgroups in /sys/fs/cgroup/cpu/berth (permission denied); " +
        "replicas run without CPU and memory limits; run berth as root, or have root hand uid 65534 a subtree once " +
        "(mkdir /sys/fs/cgroup/{cpu,cpuacct,memory}/berth-65534 and chown -R 65534 them) and set BERTH_CGROUP_SUBTREE=berth-65534";

    private const string Bars = """
        name: barsapp
        services:
          bars:
            run: [perl, -e, "$$|=1; print qq(up\n); sleep 600"]
            replicas: 3
            resources:
              limits: {memory: 64Mi}
            stop_grace_period: 1s
        """;

    /// <summary>The state root leaves behind once it has run Berth here (what the issue's reporter had): Berth's folder
    /// in each v1 controller, owned by root. Made by running berth as root once when it is not there yet.</summary>
    private static async Task EnsureRootRanBerthAsync()
    {
        if (new[] { "cpu", "cpuacct", "memory" }.All(c => Directory.Exists(Path.Combine(Controllers, c, "berth"))))
        {
            return;
        }

        var dir = Directory.CreateTempSubdirectory("berth-as-root-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "berth.yaml"), Bars);
            var cli = new BerthCli(dir);
            var up = await cli.RunAsync("up", "-d");
            Assert.True(up.Code == 0, $"berth up -d as root: {up}");
            await cli.DownAsync();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootlessFact]
    public async Task Up_RootOwnedBerthCgroupExists_ReplicasRunWithoutCrashLoopAndUpPsAndApiSayWhatIsEnforced()
    {
        await EnsureRootRanBerthAsync();
        Assert.True(Directory.Exists(Cpu("berth")), "root's berth cgroup is there");
        using var user = new UnprivilegedBerth("bars");
        user.WriteSpec(Bars);

        var up = await user.RunAsync("up", "-d");

        Assert.True(up.Code == 0, $"berth up -d as uid 65534: {up}");
        Assert.StartsWith("berth: control plane running in the background (pid ", up.ErrLines[0], StringComparison.Ordinal);
        Assert.StartsWith("berth: dashboard: http://127.0.0.1:", up.ErrLines[1], StringComparison.Ordinal);
        Assert.Equal(
            [$"berth: warning: {CgroupsLine}", $"berth: {NetworkNamespacesLine}", $"berth: warning: {LimitsLine("bars", "memory 64Mi")}"],
            up.ErrLines[2..]);

        // Three replicas ready and none ever restarted: the root-owned cgroup made every one crash-loop before.
        List<JsonElement> replicas = [];
        await Poll.UntilAsync(async () =>
        {
            replicas = [.. (await user.ApiGetAsync("/v1/replicas")).EnumerateArray()];
            return replicas.Count == 3 && replicas.All(r => r.GetProperty("phase").GetString() == "ready");
        }, TimeSpan.FromSeconds(90), "3 ready replicas of bars");
        Assert.All(replicas, r => Assert.Equal(0, r.GetProperty("restarts").GetInt32()));
        Assert.DoesNotContain((await user.RunAsync("events")).Out.Split('\n'), l => l.Contains(" failed ", StringComparison.Ordinal) || l.Contains(" backoff ", StringComparison.Ordinal));

        // GET /v1/app says the same, word for word.
        var app = await user.ApiGetAsync("/v1/app");
        Assert.Equal("uid 65534", app.GetProperty("user").GetString());
        Assert.Equal([CgroupsLine, NetworkNamespacesLine], app.GetProperty("capabilities").EnumerateArray().Select(c => c.GetProperty("message").GetString()));
        Assert.Equal([false, true], app.GetProperty("capabilities").EnumerateArray().Select(c => c.GetProperty("usable").GetBoolean()));
        Assert.Equal([LimitsLine("bars", "memory 64Mi")], app.GetProperty("warnings").EnumerateArray().Select(w => w.GetProperty("message").GetString()));

        // 'berth ps' reports what cannot be used, once, the table, and the dashboard's sign-in link.
        var ps = await user.RunAsync("ps");
        Assert.Equal(0, ps.Code);
        Assert.Equal([$"berth: warning: {CgroupsLine}", $"berth: warning: {LimitsLine("bars", "memory 64Mi")}"], ps.ErrLines.Take(2));
        Assert.Matches(@"^berth: dashboard: http://127\.0\.0\.1:\d+/login\?code=\w+ \(one-time link; 'berth dashboard' prints a new one\)$", Assert.Single(ps.ErrLines.Skip(2)));
        Assert.Equal(3, ps.Out.Split('\n').Count(l => l.StartsWith("bars-", StringComparison.Ordinal) && l.Contains(" ready ", StringComparison.Ordinal)));

        // Nothing of root's was touched: berth made no cgroup in root's folder.
        Assert.False(Directory.Exists(Path.Combine(Cpu("berth"), "barsapp")), "no cgroup made under root's berth/");

        var down = await user.RunAsync("down");
        Assert.True(down.Code == 0, $"berth down: {down}");
        await Poll.UntilAsync(() => user.LiveProcesses().Count == 0, TimeSpan.FromSeconds(30), $"no process of uid 65534 left in {user.Root}");
    }

    /// <summary>Issue #14 §2 as uid 65534: the secret reaches the replica, the store holds it only sealed, and the key that
    /// unseals it is the user's alone (0600; another uid cannot read it).</summary>
    [RootlessFact]
    public async Task Up_SecretEnvAsNormalUser_ReplicaGetsItStoreHoldsItSealedKeyIsTheUsersAlone()
    {
        const string Password = "rootless-pw-3e91c7d2";
        using var user = new UnprivilegedBerth("vault");
        user.Environment["VAULT_PW"] = Password;
        user.WriteSpec("""
            name: vault
            services:
              keeper:
                run: [perl, -e, "$$|=1; print qq(up\n); sleep 600"]
                environment:
                  DB_PASSWORD: ${VAULT_PW}
                  LOG_LEVEL: visible-in-the-store
                secret_env: [DB_PASSWORD]
                stop_grace_period: 1s
            """);

        var up = await user.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d as uid 65534: {up}");
        int pid = 0;
        await Poll.UntilAsync(async () =>
        {
            var replica = (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().SingleOrDefault();
            pid = replica.ValueKind == JsonValueKind.Object && replica.TryGetProperty("pid", out var p) && p.ValueKind == JsonValueKind.Number ? p.GetInt32() : 0;
            return pid > 0 && replica.GetProperty("phase").GetString() is "running" or "ready";
        }, TimeSpan.FromSeconds(60), "the keeper replica running");

        Assert.Contains($"DB_PASSWORD={Password}", File.ReadAllText($"/proc/{pid}/environ").Split('\0'));
        var store = string.Concat(new[] { "state.db", "state.db-wal", "state.db-shm" }.Select(f => Path.Combine(user.State, f)).Where(File.Exists)
            .Select(f => System.Text.Encoding.Latin1.GetString(File.ReadAllBytes(f))));
        Assert.Contains("visible-in-the-store", store, StringComparison.Ordinal); // the check reads what the store wrote
        Assert.DoesNotContain(Password, store, StringComparison.Ordinal);

        var key = Path.Combine(user.State, "state.key");
        Assert.Equal((0, $"{UnprivilegedBerth.Uid} 600\n"), await RunAsync("stat", "-c", "%u %a", key));
        var other = await RunAsync("setpriv", "--reuid", "65533", "--regid", "65533", "--clear-groups", "cat", key);
        Assert.True(other.Code != 0, $"uid 65533 read the state key: {other.Out}");

        var down = await user.RunAsync("down");
        Assert.True(down.Code == 0, $"berth down: {down}");
        await Poll.UntilAsync(() => user.LiveProcesses().Count == 0, TimeSpan.FromSeconds(30), $"no process of uid 65534 left in {user.Root}");
    }

    [RootlessFact]
    public async Task Up_ShopSampleAsNormalUser_OrderThroughMeshAndCtrlCLeavesNothing()
    {
        await EnsureRootRanBerthAsync();
        foreach (var port in new[] { 7100, 7200, 7300, 7400 })
        {
            Assert.False(Listening(port), $"port {port} (the shop sample's) is already in use; stop what holds it");
        }

        using var user = new UnprivilegedBerth("shop");
        user.CopySample("shop");

        // The sample's build command is 'dotnet build', whose compiler server and MSBuild nodes would outlive the test
        // and leave their pipes in /tmp (the .NET SDK's, whatever TMPDIR says); build without them, so what is checked
        // below is Berth's own footprint.
        user.Environment["UseSharedCompilation"] = "false";
        user.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        var before = user.UserFilesOutside();

        // The README's main command, as the user: berth up -f berth.yaml in the sample's folder (it builds the app first).
        using var up = user.Start("up", "-f", "berth.yaml");
        await Poll.UntilAsync(() => up.Err.Any(l => l.StartsWith("berth: 'shop' is up: 6/6 replicas ready", StringComparison.Ordinal)) || up.Process.HasExited,
            TimeSpan.FromMinutes(5), "the shop sample up as uid 65534");
        Assert.False(up.Process.HasExited, $"berth up exited:\n{up.Transcript}");

        Assert.Single(up.Err, l => l == $"berth: warning: {CgroupsLine}");
        Assert.Single(up.Err, l => l == $"berth: {NetworkNamespacesLine}");
        foreach (var (service, limits) in new[] { ("frontend", "cpu 500m, memory 256Mi"), ("api", "cpu 1, memory 256Mi"), ("worker", "cpu 500m, memory 256Mi"), ("db", "cpu 500m, memory 128Mi") })
        {
            Assert.Single(up.Err, l => l == $"berth: warning: {LimitsLine(service, limits)}");
        }

        // An order through the mesh, as the README says.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) })
        {
            var placed = await http.PostAsync(new Uri("http://127.0.0.1:7200/orders?item=tea&qty=2"), null);
            var body = await placed.Content.ReadAsStringAsync();
            Assert.True(placed.IsSuccessStatusCode, $"POST /orders: {(int)placed.StatusCode} {body}");
            using var order = JsonDocument.Parse(body);
            Assert.Equal("tea", order.RootElement.GetProperty("item").GetString());
            Assert.Contains("tea:2:", await http.GetStringAsync(new Uri("http://127.0.0.1:7100/")), StringComparison.Ordinal);
        }

        // Every replica runs as the user; Berth's state is in the app folder and owned by the user.
        Assert.True(user.LiveProcesses().Count >= 7, $"berth and its 6 replicas run as uid 65534: {string.Join("; ", user.LiveProcesses())}");
        Assert.True(File.Exists(Path.Combine(user.State, "state.db")) && File.Exists(Path.Combine(user.State, "api-token")), "state in the app's .berth/");

        // Ctrl-C: everything stops, nothing is left.
        up.Interrupt();
        Assert.True(up.Process.WaitForExit(TimeSpan.FromMinutes(2)), $"berth up ended after Ctrl-C:\n{up.Transcript}");
        Assert.Equal(130, up.Process.ExitCode);
        // The exit can be seen before the last redirected line is read: wait for it with a deadline.
        await Poll.UntilAsync(() => up.Err.Contains("berth: 'shop' stopped"), TimeSpan.FromSeconds(10), $"berth: 'shop' stopped on stderr:\n{up.Transcript}");
        await Poll.UntilAsync(() => user.LiveProcesses().Count == 0, TimeSpan.FromSeconds(30), $"no process of uid 65534 left in {user.Root}");
        foreach (var port in new[] { 7100, 7200, 7300, 7400 })
        {
            Assert.False(Listening(port), $"port {port} still answers after Ctrl-C");
        }

        // Nothing written outside the user's reach: no file of the user's appeared in the machine's shared places.
        Assert.Empty(user.UserFilesOutside().Except(before));
    }

    [RootlessFact]
    public async Task Up_SubtreeHandedToUserOnV1_LimitsEnforcedAndMemoryHogKilled()
    {
        const string Subtree = "berth-65534";
        foreach (var c in new[] { "cpu", "cpuacct", "memory" })
        {
            Directory.CreateDirectory(Path.Combine(Controllers, c, Subtree));
            UnprivilegedBerth.Chown(Path.Combine(Controllers, c, Subtree));
        }

        using var user = new UnprivilegedBerth("subtree");
        try
        {
            user.Environment["BERTH_CGROUP_SUBTREE"] = Subtree;
            user.WriteSpec("name: hogs\nservices:\n" + IdleService.Entry("calm", limits: "{cpu: 250m, memory: 64Mi}") + """
                  hog:
                    run: [perl, -e, "$$|=1; my @a; for (1..40) { push @a, 'x' x (8 << 20); print qq(grew\n) } sleep 600"]
                    restart: never
                    resources:
                      limits: {memory: 64Mi}
                """);

            var up = await user.RunAsync("up", "-d");

            Assert.True(up.Code == 0, $"berth up -d: {up}");
            Assert.StartsWith("berth: dashboard: http://127.0.0.1:", up.ErrLines[1], StringComparison.Ordinal);
            Assert.Equal(
                ["berth: cgroups: CPU and memory limits enforced through cgroup v1 (cpu, cpuacct, memory) under /sys/fs/cgroup/<controller>/berth-65534", $"berth: {NetworkNamespacesLine}"],
                up.ErrLines[2..]);
            var calm = "";
            await Poll.UntilAsync(async () =>
            {
                var replicas = (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().ToList();
                calm = replicas.FirstOrDefault(r => r.GetProperty("service").GetString() == "calm") is { ValueKind: JsonValueKind.Object } c ? c.GetProperty("id").GetString()! : "";
                return calm.Length > 0 && File.Exists(Path.Combine(Controllers, "memory", Subtree, "hogs", calm, "memory.limit_in_bytes"));
            }, TimeSpan.FromSeconds(90), "calm's cgroup in the user's subtree");
            Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(Controllers, "memory", Subtree, "hogs", calm, "memory.limit_in_bytes")).Trim());
            Assert.Equal("25000", File.ReadAllText(Path.Combine(Controllers, "cpu", Subtree, "hogs", calm, "cpu.cfs_quota_us")).Trim());

            // The kernel holds the user's hog to 64Mi: it is OOM-killed, and Berth says so.
            await Poll.UntilAsync(async () => (await user.RunAsync("events")).Out.Contains("OOM", StringComparison.OrdinalIgnoreCase),
                TimeSpan.FromSeconds(90), "the hog OOM-killed in its cgroup");

            var down = await user.RunAsync("down");
            Assert.True(down.Code == 0, $"berth down: {down}");
            // down as the normal user removes every group it made, the OOM-killed hog's too (issue #14: cgroup cleanup).
            foreach (var c in new[] { "cpu", "cpuacct", "memory" })
            {
                Assert.False(Directory.Exists(Path.Combine(Controllers, c, Subtree, "hogs")), $"{c}/{Subtree}/hogs left after down: {down}");
            }
        }
        finally
        {
            // Groups are removed deepest first (rmdir is the only way); one still busy is left for the next run to reuse.
            foreach (var c in new[] { "cpu", "cpuacct", "memory" })
            {
                var top = Path.Combine(Controllers, c, Subtree);
                var groups = Directory.Exists(top) ? Directory.GetDirectories(top, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(top) : [];
                foreach (var group in groups)
                {
                    try
                    {
                        Directory.Delete(group);
                    }
                    catch (IOException)
                    {
                    }
                }
            }
        }
    }

    /// <summary>Issue #14: cgroup cleanup on cgroup v2 as a normal user. This machine mounts v1, so BERTH_CGROUP_ROOT points
    /// berth (uid 65534) at a fake v2 tree laid out like the kernel's (cgroup.controllers at its root, owned by the user, as a
    /// delegated subtree is): each replica gets its group with its limit and its pid, a replica removed by a scale-down takes
    /// its group along, a group left by a control plane killed with SIGKILL is swept by down, and down leaves nothing.</summary>
    [RootlessFact]
    public async Task Down_FakeCgroupV2TreeAsNormalUser_ScaleDownAndDownRemoveTheGroupsAndLeftoversAreSwept()
    {
        using var user = new UnprivilegedBerth("cgroup2");
        var tree = Path.Combine(user.Root, "cgroup2");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
        UnprivilegedBerth.Chown(tree);
        user.Environment["BERTH_CGROUP_ROOT"] = tree;
        user.WriteSpec(Bars.Replace("name: barsapp", "name: bars2", StringComparison.Ordinal));
        var app = Path.Combine(tree, "berth", "bars2");

        var up = await user.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d: {up}");
        Assert.Contains($"berth: cgroups: CPU and memory limits enforced through cgroup v2 at {tree}/berth (cpu memory cpuset)", up.ErrLines);
        List<string> ids = [];
        await Poll.UntilAsync(async () =>
        {
            ids = [.. (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Where(r => r.GetProperty("phase").GetString() is "running" or "ready")
                .Select(r => r.GetProperty("id").GetString()!).Order()];
            return ids.Count == 3 && ids.All(id => File.Exists(Path.Combine(app, id, "cgroup.procs")) && File.ReadAllText(Path.Combine(app, id, "cgroup.procs")).Trim().Length > 0);
        }, TimeSpan.FromSeconds(90), "3 running replicas, each in its group of the fake v2 tree with its pid");
        Assert.All(ids, id => Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(app, id, "memory.max"))));

        var scale = await user.RunAsync("scale", "bars=1");
        Assert.True(scale.Code == 0, $"berth scale bars=1: {scale}");
        List<string> kept = [];
        await Poll.UntilAsync(async () =>
        {
            kept = [.. (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Select(r => r.GetProperty("id").GetString()!)];
            return kept.Count == 1 && Directory.GetDirectories(app).Select(Path.GetFileName).SequenceEqual(kept);
        }, TimeSpan.FromSeconds(60), $"only the kept replica's group under {app} after 'berth scale bars=1'; there are {string.Join(", ", Directory.GetDirectories(app))}");

        // What a control plane killed mid-removal leaves: a group of the user's (empty, its control files still there).
        using var address = JsonDocument.Parse(File.ReadAllText(Path.Combine(user.State, "api.json")));
        var controlPlane = address.RootElement.GetProperty("pid").GetInt32();
        System.Diagnostics.Process.GetProcessById(controlPlane).Kill();
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{controlPlane}"), TimeSpan.FromSeconds(20), "the control plane gone after SIGKILL");
        var leftover = Path.Combine(app, ids.Except(kept).First());
        Directory.CreateDirectory(leftover);
        File.WriteAllText(Path.Combine(leftover, "memory.max"), "67108864");
        File.WriteAllText(Path.Combine(leftover, "cgroup.procs"), "");
        UnprivilegedBerth.Chown(app);

        var down = await user.RunAsync("down");

        Assert.True(down.Code == 0, $"berth down: {down}");
        Assert.False(Directory.Exists(app), $"{app} left after down: {string.Join(", ", Directory.Exists(app) ? Directory.GetFileSystemEntries(app, "*", SearchOption.AllDirectories) : [])}");
        Assert.Empty(Directory.GetDirectories(Path.Combine(tree, "berth")));
    }

    [RootlessFact]
    public async Task Up_DockerSocketOnlyForRoot_DockerServicePendingAndEverySocketTriedNamed()
    {
        Assert.True(File.Exists("/var/run/docker.sock"), "a rootful Docker engine listens at /var/run/docker.sock (CI starts one)");
        using var user = new UnprivilegedBerth("docker");
        user.WriteSpec("""
            name: boxes
            services:
              box:
                image: busybox:latest
                run: [sleep, "600"]
              plain:
                run: [perl, -e, "sleep 600"]
                stop_grace_period: 1s
            """);

        var up = await user.RunAsync("up", "-d");

        Assert.True(up.Code == 0, $"berth up -d: {up}");
        const string DockerLine = "docker: Docker engine not reachable: tried unix:///var/run/docker.sock (permission denied: uid 65534 may not use it (not in the docker group?)), " +
            "unix:///run/user/65534/docker.sock (no such socket). Start Docker (systemctl start docker, or run dockerd), or set DOCKER_HOST to a running engine " +
            "(rootless Docker: unix://$XDG_RUNTIME_DIR/docker.sock); the process driver needs no Docker; Docker services stay Pending";
        Assert.Contains($"berth: warning: {DockerLine}", up.ErrLines);
        var app = await user.ApiGetAsync("/v1/app");
        Assert.Contains(DockerLine, app.GetProperty("capabilities").EnumerateArray().Select(c => c.GetProperty("message").GetString()));

        // The process service runs; the Docker one waits with the reason.
        await Poll.UntilAsync(async () => (await user.ApiGetAsync("/v1/replicas")).EnumerateArray()
            .Any(r => r.GetProperty("service").GetString() == "plain" && r.GetProperty("phase").GetString() == "ready"), TimeSpan.FromSeconds(90), "plain ready");
        var box = (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Single(r => r.GetProperty("service").GetString() == "box");
        Assert.Equal("pending", box.GetProperty("phase").GetString());

        var down = await user.RunAsync("down");
        Assert.True(down.Code == 0, $"berth down: {down}");
    }

    private static async Task<(int Code, string Out)> RunAsync(string file, params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, output);
    }

    private static bool Listening(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Connect(System.Net.IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
