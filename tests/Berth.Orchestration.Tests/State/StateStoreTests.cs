
namespace Berth.Orchestration.Tests.State;

public sealed class StateStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-store-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Application App(int replicas) => new()
    {
        Name = "shop",
        Services =
        [
            new Service
            {
                Name = "api", Command = ["dotnet", "api.dll"], Replicas = replicas,
                Endpoints = [new Endpoint { Name = "http", Port = 8080 }],
                Resources = new Resources { CpuRequest = CpuQuantity.Parse("250m"), MemoryLimit = ByteSize.FromMebibytes(256) },
                Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(2) },
                DependsOn = [new Dependency("db", DependencyCondition.Healthy)],
            },
        ],
        Nodes = [new Node("a", CpuQuantity.Parse("1"), ByteSize.FromMebibytes(512))],
        Scheduler = SchedulerPolicy.BinPack,
    };

    private static int CatAsNobody(string file)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", file])
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode;
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Open_FolderMadeByAnOlderBerth_Folder0700FilesOwnerOnlyAndUnreadableToAnotherUid()
    {
        const UnixFileMode open = (UnixFileMode)0b111_101_101;
        File.SetUnixFileMode(_dir, open); // the temp folder itself is 0700: open it up, so only the state folder's own modes protect
        var state = Path.Combine(_dir, ".berth");
        Directory.CreateDirectory(state, open);

        using (var store = StateStore.Open(state))
        using (StateLock.TryAcquire(state))
        {
            store.AddRevision(n => new RevisionRecord { Number = n, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = App(2) });
            var files = new[] { StateStore.FileName, StateStore.FileName + "-wal", StateStore.FileName + "-shm", StateLock.FileName, SecretBox.KeyFileName }.Select(f => Path.Combine(state, f)).ToList();

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(state));
            Assert.All(files, f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
            if (Environment.UserName == "root")
            {
                var control = Path.Combine(_dir, "control.txt");
                File.WriteAllText(control, "readable");
                File.SetUnixFileMode(control, (UnixFileMode)0b110_100_100);
                Assert.True(CatAsNobody(control) == 0, "uid 65534 reads a 0644 file beside the state folder: the setpriv check works");
                Assert.All(files, f => Assert.True(CatAsNobody(f) != 0, $"uid 65534 read {f}"));
            }
        }
    }

    [Fact]
    public void StateJson_SourceGenerated_WritesWhatReflectionWrote()
    {
        // The store's records use source-generated metadata (issue #21); the text must stay what older control planes wrote
        // and read, for every sample's model.
        var reflection = new System.Text.Json.JsonSerializerOptions(StateJson.Options) { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
        var specs = Directory.GetFiles(Repository.Path("samples/compose"), "compose.yaml", SearchOption.AllDirectories).Append(Repository.Path("samples/shop/berth.yaml")).ToList();
        Assert.True(specs.Count > 5, "the samples are found");
        foreach (var spec in specs)
        {
            var app = Berth.Core.Loading.SpecLoader.LoadFile(spec).Application;
            Assert.True(app is not null, $"{spec} loads");
            var revision = new RevisionRecord { Number = 3, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = app, Stopped = ["db"] };
            var replica = new ReplicaRecord { Id = "api-1", Service = "api", Revision = 3, CreatedAt = DateTimeOffset.UnixEpoch, Phase = ReplicaPhase.BackOff, LastExitCause = ExitCause.OomKilled };
            var text = System.Text.Json.JsonSerializer.Serialize(revision, StateJson.Options);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(revision, reflection), text);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(replica, reflection), System.Text.Json.JsonSerializer.Serialize(replica, StateJson.Options));
            Assert.Equal(
                System.Text.Json.JsonSerializer.Serialize(System.Text.Json.JsonSerializer.Deserialize<RevisionRecord>(text, reflection), reflection),
                System.Text.Json.JsonSerializer.Serialize(System.Text.Json.JsonSerializer.Deserialize<RevisionRecord>(text, StateJson.Options), reflection));
        }
    }

    [Fact]
    public void AddRevision_TwelveChanges_KeepsNewestTenNumberedOnward()
    {
        using var store = StateStore.Open(_dir);
        for (var i = 1; i <= 12; i++)
        {
            store.AddRevision(n => new RevisionRecord { Number = n, CreatedAt = DateTimeOffset.UnixEpoch, Cause = $"scale api={i}", Application = App(i) });
        }

        var kept = store.ListRevisions();
        Assert.Equal(Enumerable.Range(3, 10).Reverse().Select(n => (long)n), kept.Select(r => r.Number));
        Assert.Equal(12, store.CurrentRevision()!.Application.Services[0].Replicas);
        Assert.Null(store.GetRevision(2));
    }

    [Fact]
    public void CurrentRevision_AfterReopen_RoundTripsTheWholeModel()
    {
        using (var store = StateStore.Open(_dir))
        {
            store.AddRevision(n => new RevisionRecord { Number = n, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = App(3),
                Templates = ImmutableSortedDictionaryOf("api", 1) });
        }

        using var reopened = StateStore.Open(_dir);
        var revision = reopened.CurrentRevision()!;
        var api = revision.Application.Services.Single();
        Assert.Equal(3, api.Replicas);
        Assert.Equal(["dotnet", "api.dll"], api.Command.ToArray());
        Assert.Equal(250, api.Resources.CpuRequest!.Value.MilliCores);
        Assert.Equal(256L << 20, api.Resources.MemoryLimit!.Value.Bytes);
        Assert.Equal("/healthz", api.Readiness!.Path);
        Assert.Equal(TimeSpan.FromSeconds(2), api.Readiness.Period);
        Assert.Equal(DependencyCondition.Healthy, api.DependsOn.Single().Condition);
        Assert.Equal(8080, api.Endpoints.Single().Port);
        Assert.Equal(SchedulerPolicy.BinPack, revision.Application.Scheduler);
        Assert.Equal("a", revision.Application.Nodes.Single().Name);
        Assert.Equal(1, revision.TemplateOf("api"));
    }

    [Fact]
    public void CurrentRevision_WrittenBeforeMembersWereAdded_ReadsTheModelsDefaultsAndWritesAgain()
    {
        using (var store = StateStore.Open(_dir))
        {
            store.AddRevision(n => new RevisionRecord { Number = n, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = App(3),
                Templates = ImmutableSortedDictionaryOf("api", 1) });
        }

        // An older Berth's body: its services lack members added since (a list, and an object with an initializer).
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_dir, "state.db")};Pooling=False"))
        {
            db.Open();
            using var read = db.CreateCommand();
            read.CommandText = "SELECT body FROM revisions";
            var body = System.Text.Json.Nodes.JsonNode.Parse((string)read.ExecuteScalar()!)!;
            var service = body["application"]!["services"]![0]!.AsObject();
            Assert.True(service.Remove("watch") && service.Remove("logging") && service.Remove("aliases"), service.ToJsonString());
            using var write = db.CreateCommand();
            write.CommandText = "UPDATE revisions SET body = $b";
            write.Parameters.AddWithValue("$b", body.ToJsonString());
            write.ExecuteNonQuery();
        }

        using var reopened = StateStore.Open(_dir);
        var api = reopened.CurrentRevision()!.Application.Services.Single();
        Assert.False(api.Watch.IsDefault);
        Assert.Empty(api.Watch);
        Assert.False(api.Aliases.IsDefault);
        Assert.Equal(new Service { Name = "x" }.Logging, api.Logging);
        // What the first apply on such a folder does with it (it threw "a default instance of ImmutableArray").
        Assert.Contains("\"watch\":[]", System.Text.Json.JsonSerializer.Serialize(reopened.CurrentRevision()!.Application, StateJson.Options), StringComparison.Ordinal);
    }

    [Fact]
    public void From_WriteLockHeldByAnotherProgram_LockedFaultInWordsNotAnSqliteException()
    {
        using (StateStore.Open(_dir))
        {
        }

        var db = Path.Combine(_dir, StateStore.FileName);
        using var holder = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False");
        holder.Open();
        using var held = holder.BeginTransaction(deferred: false);
        using (var first = holder.CreateCommand())
        {
            first.Transaction = held;
            first.CommandText = "INSERT INTO events (time, type, service, message) VALUES ('t', 'x', 'api', 'held')";
            first.ExecuteNonQuery();
        }

        using var writer = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False;Default Timeout=1");
        writer.Open();
        using var write = writer.CreateCommand();
        write.CommandText = "INSERT INTO events (time, type, service, message) VALUES ('t', 'x', 'api', 'm')";
        var sql = Assert.Throws<Microsoft.Data.Sqlite.SqliteException>(() => write.ExecuteNonQuery());

        var fault = StateStoreException.From(sql, db);

        Assert.NotNull(fault);
        Assert.Equal(StateFault.Locked, fault.Fault);
        Assert.Equal($"the state store {db} is locked by another program (SQLite Error 5: 'database is locked')", fault.Problem);
        Assert.Equal($"end what holds it (an open sqlite3 transaction, a backup: fuser -v {db}); Berth retries on its own", fault.Fix);
    }

    [Fact]
    public void ListEvents_AfterReopen_KeepsEveryEventInOrder()
    {
        using (var store = StateStore.Open(_dir))
        {
            for (var i = 0; i < 50; i++)
            {
                store.AppendEvent(new EventRecord { Time = DateTimeOffset.UnixEpoch.AddSeconds(i), Type = "started", Service = "api", Replica = $"api-{i}", Message = $"m{i}" });
            }
        }

        using var reopened = StateStore.Open(_dir);
        var events = reopened.ListEvents();
        Assert.Equal(50, events.Count);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"m{i}"), events.Select(e => e.Message));
        Assert.Equal(events.Select(e => e.Id).Order(), events.Select(e => e.Id));
        Assert.Equal(DateTimeOffset.UnixEpoch.AddSeconds(49), events[^1].Time);
        Assert.Equal(10, reopened.ListEvents(afterId: events[39].Id).Count);
    }

    [Fact]
    public void SaveReplica_Twice_KeepsOneRecordWithTheLatestState()
    {
        using var store = StateStore.Open(_dir);
        store.SaveReplica(new ReplicaRecord { Id = "api-1", Service = "api", Phase = ReplicaPhase.Pending, Reason = "0/1 nodes fit" });
        store.SaveReplica(new ReplicaRecord { Id = "api-1", Service = "api", Phase = ReplicaPhase.BackOff, RestartCount = 2, NextRetryAt = DateTimeOffset.UnixEpoch });
        var r = Assert.Single(store.ListReplicas());
        Assert.Equal(ReplicaPhase.BackOff, r.Phase);
        Assert.Equal(2, r.RestartCount);
        Assert.Equal(DateTimeOffset.UnixEpoch, r.NextRetryAt);
        store.DeleteReplica("api-1");
        Assert.Empty(store.ListReplicas());
    }

    [Fact]
    public void Open_AfterWrite_UsesWalJournal()
    {
        using var store = StateStore.Open(_dir);
        store.SaveEndpointPort("api", "http", 41000);
        Assert.True(File.Exists(Path.Combine(_dir, "state.db-wal")));
        Assert.Equal(41000, store.ListEndpointPorts()[("api", "http")]);
    }

    private static System.Collections.Immutable.ImmutableSortedDictionary<string, long> ImmutableSortedDictionaryOf(string k, long v) =>
        System.Collections.Immutable.ImmutableSortedDictionary<string, long>.Empty.Add(k, v);
}
