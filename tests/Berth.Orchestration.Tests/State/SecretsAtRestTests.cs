using System.Text;
using Microsoft.Data.Sqlite;

namespace Berth.Orchestration.Tests.State;

/// <summary>Issue #14 §2: secret values never reach state.db, its WAL or its shared memory in plain text.</summary>
public sealed class SecretsAtRestTests : IAsyncLifetime
{
    private const string Password = "pw-7f3c19e2-only-in-the-spec";
    private const string FileSecret = "file-secret-5b8d0a41-only-in-the-spec";
    private readonly ControlPlaneHarness _h = new("berth-secrets-");

    public async Task InitializeAsync() => await _h.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Service Api(string version, int replicas = 2) => new()
    {
        Name = "api", Command = ["api", version], Replicas = replicas,
        Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty
            .Add("DB_PASSWORD", Password).Add("LOG_LEVEL", "info-visible"),
        SecretEnv = ["DB_PASSWORD"],
        Files = [new MountedFile { Name = "token", Kind = MountedFileKind.Secret, Target = "/run/secrets/token", Content = FileSecret }],
    };

    private static Application App(Service api) => new() { Name = "shop", Services = [api] };

    /// <summary>Every byte of the store's files: the database, its WAL and its shared-memory index.</summary>
    private static string StoreBytes(string folder) => string.Concat(
        new[] { StateStore.FileName, StateStore.FileName + "-wal", StateStore.FileName + "-shm" }
            .Select(f => Path.Combine(folder, f)).Where(File.Exists)
            .Select(f =>
            {
                using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var memory = new MemoryStream();
                stream.CopyTo(memory);
                return Encoding.Latin1.GetString(memory.ToArray());
            }));

    /// <summary>How many rollout records hold a stable spec with a sealed value, read from the file as another reader would.</summary>
    private static long SealedStableSpecs(string folder)
    {
        using var read = new SqliteConnection($"Data Source={Path.Combine(folder, StateStore.FileName)};Mode=ReadOnly;Pooling=False");
        read.Open();
        using var cmd = read.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM rollouts WHERE body LIKE '%stableSpec%' AND body LIKE '%" + SecretBox.Prefix + "%'";
        return (long)cmd.ExecuteScalar()!;
    }

    [Fact]
    public async Task Apply_SecretEnvAndSecretFile_NoPlainValueInStateDbWalOrShmAndReplicasGetTheValue()
    {
        await _h.Plane.ApplyAsync(App(Api("v1")), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2, routed: false);
        await _h.Plane.ScaleAsync("api", 3, CancellationToken.None);
        await _h.Plane.ApplyAsync(App(Api("v2", 3)), "apply", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Phase == ReplicaPhase.Ready && _h.Driver.Starts.Any(s => s.ReplicaId == r.Id && s.Command.Contains("v2"))) == 3
            && _h.Of("api").Count() == 3, "3 Ready v2 replicas");

        // The pass that calls the rollout complete (and records its stable spec) may come after the replicas are Ready.
        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.Complete, "the v2 rollout complete");
        await _h.UntilAsync(() => SealedStableSpecs(_h.Directory) >= 1, "the rollout record keeps the stable spec, sealed");

        // The replicas got the real values; the store only sealed ones, in the revisions and in the rollout's stable spec.
        Assert.All(_h.Driver.Starts, s => Assert.Equal(Password, s.Env["DB_PASSWORD"]));
        Assert.All(_h.Driver.Starts, s => Assert.Equal(FileSecret, s.Files.Single().Content));
        var bytes = StoreBytes(_h.Directory);
        Assert.Contains("info-visible", bytes, StringComparison.Ordinal); // the check reads what the store wrote
        Assert.Contains(SecretBox.Prefix, bytes, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, bytes, StringComparison.Ordinal);
        Assert.DoesNotContain(FileSecret, bytes, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(Password)), bytes, StringComparison.Ordinal);

        // A restarted control plane reads them back: an undo to v1 starts replicas with the real value again.
        await _h.RestartPlaneAsync();
        Assert.Equal(Password, _h.Store.CurrentRevision()!.Application.Services[0].Env["DB_PASSWORD"]);
        var starts = _h.Driver.Starts.Count;
        await _h.Plane.UndoRolloutAsync("api", null, CancellationToken.None);
        await _h.UntilAsync(() => _h.Driver.Starts.Skip(starts).Count(s => s.Command.Contains("v1")) >= 1, "a v1 replica started by the undo");
        Assert.All(_h.Driver.Starts.Skip(starts), s => Assert.Equal(Password, s.Env["DB_PASSWORD"]));
        Assert.DoesNotContain(Password, StoreBytes(_h.Directory), StringComparison.Ordinal);
    }
}

/// <summary>The key file and what happens when it or the store is not what it should be.</summary>
public sealed class SecretBoxTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-key-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Application App(string password) => new()
    {
        Name = "shop",
        Services = [new Service
        {
            Name = "api", Command = ["api"],
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("DB_PASSWORD", password),
            SecretEnv = ["DB_PASSWORD"],
        }],
    };

    [Fact]
    public void Open_StoreWithPlainSecretsFromAnOlderBerth_SealedInPlaceNoPlainCopyLeftValueReadBack()
    {
        const string Password = "older-berth-plain-4c2e9a";
        StateStore.Open(_dir).Dispose();

        // What an older Berth wrote: the body with the value in plain text.
        using (var raw = new SqliteConnection($"Data Source={Path.Combine(_dir, StateStore.FileName)};Pooling=False"))
        {
            raw.Open();
            using var cmd = raw.CreateCommand();
            cmd.CommandText = "INSERT INTO revisions (number, created_at, cause, body) VALUES (1, 'x', 'up', $b)";
            cmd.Parameters.AddWithValue("$b", System.Text.Json.JsonSerializer.Serialize(
                new RevisionRecord { Number = 1, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = App(Password) }, StateJson.Options));
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        Assert.Contains(Password, Bytes(), StringComparison.Ordinal);

        using (var store = StateStore.Open(_dir))
        {
            Assert.Equal(Password, store.CurrentRevision()!.Application.Services[0].Env["DB_PASSWORD"]);
        }

        Assert.DoesNotContain(Password, Bytes(), StringComparison.Ordinal);
        using var again = StateStore.Open(_dir);
        Assert.Equal(Password, again.CurrentRevision()!.Application.Services[0].Env["DB_PASSWORD"]);
    }

    [Fact]
    public void Open_KeyFromAnotherFolder_SaysTheKeyDoesNotMatchAndHowToFix()
    {
        using (var store = StateStore.Open(_dir))
        {
            store.AddRevision(n => new RevisionRecord { Number = n, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "up", Application = App("pw") });
        }

        var key = Path.Combine(_dir, SecretBox.KeyFileName);
        File.Delete(key);
        // A new key is made; the old values cannot be read with it, which opening finds.
        var e = Assert.Throws<StateStoreException>(() => StateStore.Open(_dir));
        Assert.Equal($"a secret value in state.db cannot be unsealed: {key} is not the key it was sealed with", e.Problem);
        Assert.Equal("put back the state.key that belongs with this state.db; if it is lost, run 'berth down', delete the state folder and run 'berth up' again", e.Fix);
    }

    [Fact]
    public void Open_KeyFileDamaged_SaysSoWithTheFix()
    {
        StateStore.Open(_dir).Dispose();
        var key = Path.Combine(_dir, SecretBox.KeyFileName);
        File.WriteAllText(key, "not a key");

        var e = Assert.Throws<StateStoreException>(() => StateStore.Open(_dir));

        Assert.Equal($"{key} is not a Berth state key (expected 32 bytes in base64)", e.Problem);
    }

    [Fact]
    public void Seal_SameValueTwice_DifferentTextsBothOpen()
    {
        var box = SecretBox.OpenOrCreate(_dir);
        var a = box.Seal("v");
        var b = box.Seal("v");
        Assert.NotEqual(a, b);
        Assert.StartsWith(SecretBox.Prefix, a, StringComparison.Ordinal);
        Assert.Equal("v", box.Open(a));
        Assert.Equal("v", box.Open(b));
        Assert.Equal("plain", box.Open("plain"));
    }

    private string Bytes() => string.Concat(new[] { "state.db", "state.db-wal" }.Select(f => Path.Combine(_dir, f)).Where(File.Exists)
        .Select(f => Encoding.Latin1.GetString(File.ReadAllBytes(f))));
}
