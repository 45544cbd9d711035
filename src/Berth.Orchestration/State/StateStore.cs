using System.Globalization;
using System.Text.Json;
using Berth.Core.Model;
using Microsoft.Data.Sqlite;

namespace Berth.Orchestration.State;

/// <summary>The control plane's memory: revisions (desired state, last N kept), replica records, stable ports and events,
/// in one SQLite file in WAL mode so a kill -9 loses nothing that was committed.</summary>
public sealed class StateStore : IDisposable
{
    /// <summary>File name inside the app's state folder.</summary>
    public const string FileName = "state.db";

    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();
    private readonly int _historyLimit;
    private SqliteTransaction? _batch;
    private int _batchDepth;
    private bool _batchWrote;
    private long _commits;

    private readonly SecretBox _secrets;

    private StateStore(SqliteConnection connection, int historyLimit, SecretBox secrets)
    {
        _connection = connection;
        _historyLimit = historyLimit;
        _secrets = secrets;
    }

    /// <summary>Seals secret values before they are stored (revisions here; the rollout controller's stable spec).</summary>
    public SecretBox Secrets => _secrets;

    /// <summary>Transactions that wrote, committed so far (a batch, a revision, or a write made outside a batch): what a test counts to
    /// show that a reconcile pass writes in one transaction rather than one per record.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Opens a batch: every write until the returned scope is disposed goes into one transaction, committed then
    /// (batches nest; the outermost commits). The control loop wraps each locked section in one, so a pass that places forty
    /// replicas commits once, not ~120 times. Writes from other threads meanwhile join the same transaction.</summary>
    public IDisposable Batch()
    {
        Locked(() =>
        {
            if (_batchDepth++ == 0)
            {
                _batch = _connection.BeginTransaction();
            }
        });
        return new BatchScope(this);
    }

    private void EndBatch() => Locked(() =>
    {
        if (--_batchDepth > 0 || _batch is not { } tx)
        {
            return;
        }

        _batch = null;
        var wrote = _batchWrote;
        _batchWrote = false;
        using (tx)
        {
            tx.Commit();
        }

        if (wrote)
        {
            Interlocked.Increment(ref _commits);
        }
    });

    /// <summary>Counts a write made by one statement: it commits on its own unless a batch is open.</summary>
    private void Wrote()
    {
        if (_batch is null)
        {
            Interlocked.Increment(ref _commits);
        }
        else
        {
            _batchWrote = true;
        }
    }

    private sealed class BatchScope(StateStore store) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                store.EndBatch();
            }
        }
    }

    public string Path { get; private init; } = "";

    /// <summary>Opens (creating if needed) the store in <paramref name="stateDirectory"/>.</summary>
    /// <param name="stateDirectory">The app's state folder; created if missing.</param>
    /// <param name="historyLimit">Revisions kept: 10, as Kubernetes' revisionHistoryLimit.</param>
    /// <exception cref="StateStoreException">The folder or file is read-only, damaged, on a full disk, or its key is wrong.</exception>
    public static StateStore Open(string stateDirectory, int historyLimit = OrchestratorDefaults.RevisionHistoryLimit)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetFullPath(stateDirectory), FileName);
        SqliteConnection? connection = null;
        try
        {
            StateFolder.EnsurePrivate(stateDirectory);
            StateFolder.CreatePrivate(path);
            var secrets = SecretBox.OpenOrCreate(stateDirectory);
            connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = path,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Pooling = false,
            }.ToString());
            connection.Open();
            CreateSchema(connection);
            // SQLite opens a file it may not write read-only without a word; find that out now, not at the first change.
            Execute(connection, "PRAGMA user_version = 1;");
            StateFolder.MakePrivate(path, path + "-wal", path + "-shm");
            var store = new StateStore(connection, Math.Max(1, historyLimit), secrets) { Path = path };
            store.SealPlainSecrets();
            store.CurrentRevision(); // a key that does not match, or a damaged page, is found now rather than at the first apply
            return store;
        }
        catch (Exception e) when (StateStoreException.From(e, path) is { } fault)
        {
            connection?.Dispose();
            throw fault;
        }
    }

    /// <summary>Seals what an older Berth stored in plain text, overwriting the old bytes (secure_delete) and emptying the
    /// WAL, so no copy of a plain secret is left in the file.</summary>
    private void SealPlainSecrets()
    {
        lock (_gate)
        {
            var revisions = ReadAll(Command("SELECT body FROM revisions"), r => ReadRevision(r.GetString(0)))
                .Where(r => SecretBox.HasPlainSecrets(r.Application)).ToList();
            var rollouts = ReadAll(Command("SELECT service, body FROM rollouts"), r => (Service: r.GetString(0), Body: r.GetString(1)))
                .Where(r => JsonSerializer.Deserialize<SealedRollout>(r.Body, StateJson.Options)?.StableSpec is { } spec
                    && SecretBox.HasPlainSecrets(new Application { Name = "_", Services = [spec] }))
                .ToList();
            if (revisions.Count == 0 && rollouts.Count == 0)
            {
                return;
            }

            using (var tx = _connection.BeginTransaction())
            {
                foreach (var revision in revisions)
                {
                    using var cmd = Command("UPDATE revisions SET body = $b WHERE number = $n", tx);
                    cmd.Parameters.AddWithValue("$n", revision.Number);
                    cmd.Parameters.AddWithValue("$b", Serialize(revision));
                    cmd.ExecuteNonQuery();
                }

                foreach (var (service, body) in rollouts)
                {
                    var node = System.Text.Json.Nodes.JsonNode.Parse(body)!.AsObject();
                    var spec = _secrets.Open(Controllers.ModelCompleteness.FillDefaults(node["stableSpec"]!.Deserialize<Service>(StateJson.Options)!));
                    node["stableSpec"] = JsonSerializer.SerializeToNode(_secrets.Seal(spec), StateJson.Options);
                    using var cmd = Command("UPDATE rollouts SET body = $b WHERE service = $s", tx);
                    cmd.Parameters.AddWithValue("$s", service);
                    cmd.Parameters.AddWithValue("$b", node.ToJsonString(StateJson.Options));
                    cmd.ExecuteNonQuery();
                }

                tx.Commit();
            }

            Execute(_connection, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);");
        }
    }

    private sealed record SealedRollout(Service? StableSpec);

    private static void CreateSchema(SqliteConnection connection) =>
        Execute(connection, """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            PRAGMA busy_timeout=5000;
            PRAGMA secure_delete=ON;
            CREATE TABLE IF NOT EXISTS revisions (number INTEGER PRIMARY KEY, created_at TEXT NOT NULL, cause TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, service TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS endpoints (service TEXT NOT NULL, endpoint TEXT NOT NULL, port INTEGER NOT NULL, PRIMARY KEY (service, endpoint));
            CREATE TABLE IF NOT EXISTS virtual_addresses (service TEXT PRIMARY KEY, address TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, type TEXT NOT NULL,
                service TEXT, replica TEXT, message TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_replica ON events (replica, id);
            CREATE TABLE IF NOT EXISTS rollouts (service TEXT PRIMARY KEY, body TEXT NOT NULL);
            """);

    /// <summary>Appends a revision numbered one past the newest (numbers are never reused) and prunes history beyond the limit.</summary>
    public RevisionRecord AddRevision(Func<long, RevisionRecord> create)
    {
        return Locked(() =>
        {
            using var own = _batch is null ? _connection.BeginTransaction() : null;
            var tx = own ?? _batch;
            var next = Scalar<long>("SELECT COALESCE(MAX(number), 0) + 1 FROM revisions", tx);
            var revision = create(next);
            using (var cmd = Command("INSERT INTO revisions (number, created_at, cause, body) VALUES ($n, $t, $c, $b)", tx))
            {
                cmd.Parameters.AddWithValue("$n", revision.Number);
                cmd.Parameters.AddWithValue("$t", revision.CreatedAt.ToString("O", CultureInfo.InvariantCulture));
                cmd.Parameters.AddWithValue("$c", revision.Cause);
                cmd.Parameters.AddWithValue("$b", Serialize(revision));
                cmd.ExecuteNonQuery();
            }

            using (var prune = Command("DELETE FROM revisions WHERE number <= $keepAbove", tx))
            {
                prune.Parameters.AddWithValue("$keepAbove", revision.Number - _historyLimit);
                prune.ExecuteNonQuery();
            }

            if (own is not null)
            {
                own.Commit();
                Interlocked.Increment(ref _commits);
            }
            else
            {
                _batchWrote = true;
            }

            return revision;
        });
    }

    /// <summary>Rewrites a kept revision's body (counts, stopped services: what changes without a new pod template).</summary>
    public void ReplaceRevision(RevisionRecord revision)
    {
        Locked(() =>
        {
            using var cmd = Command("UPDATE revisions SET body = $b WHERE number = $n");
            cmd.Parameters.AddWithValue("$n", revision.Number);
            cmd.Parameters.AddWithValue("$b", Serialize(revision));
            var updated = cmd.ExecuteNonQuery();
            Wrote();
            if (updated != 1)
            {
                throw new InvalidOperationException($"revision {revision.Number} is not in the state store to update");
            }
        });
    }

    private string Serialize(RevisionRecord revision) =>
        JsonSerializer.Serialize(revision with { Application = _secrets.Seal(revision.Application) }, StateJson.Options);

    private RevisionRecord ReadRevision(string body)
    {
        var revision = JsonSerializer.Deserialize<RevisionRecord>(body, StateJson.Options)!;
        return revision with { Application = _secrets.Open(Controllers.ModelCompleteness.FillDefaults(revision.Application)) };
    }

    public RevisionRecord? CurrentRevision()
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT body FROM revisions ORDER BY number DESC LIMIT 1");
            return cmd.ExecuteScalar() is string body ? ReadRevision(body) : null;
        });
    }

    public RevisionRecord? GetRevision(long number)
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT body FROM revisions WHERE number = $n");
            cmd.Parameters.AddWithValue("$n", number);
            return cmd.ExecuteScalar() is string body ? ReadRevision(body) : null;
        });
    }

    /// <summary>Kept revisions, newest first.</summary>
    public IReadOnlyList<RevisionRecord> ListRevisions()
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT body FROM revisions ORDER BY number DESC");
            return ReadAll(cmd, r => ReadRevision(r.GetString(0)));
        });
    }

    public void SaveReplica(ReplicaRecord replica)
    {
        Locked(() =>
        {
            using var cmd = Command("INSERT INTO replicas (id, service, body) VALUES ($id, $s, $b) ON CONFLICT(id) DO UPDATE SET body = excluded.body");
            cmd.Parameters.AddWithValue("$id", replica.Id);
            cmd.Parameters.AddWithValue("$s", replica.Service);
            cmd.Parameters.AddWithValue("$b", JsonSerializer.Serialize(replica, StateJson.Options));
            cmd.ExecuteNonQuery();
            Wrote();
        });
    }

    public void DeleteReplica(string id)
    {
        Locked(() =>
        {
            using var cmd = Command("DELETE FROM replicas WHERE id = $id");
            cmd.Parameters.AddWithValue("$id", id);
            cmd.ExecuteNonQuery();
            Wrote();
        });
    }

    public IReadOnlyList<ReplicaRecord> ListReplicas()
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT body FROM replicas ORDER BY rowid");
            return ReadAll(cmd, r => JsonSerializer.Deserialize<ReplicaRecord>(r.GetString(0), StateJson.Options)!);
        });
    }

    /// <summary>Stable endpoint ports, assigned once and kept for the life of the state folder.</summary>
    public IReadOnlyDictionary<(string Service, string Endpoint), int> ListEndpointPorts()
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT service, endpoint, port FROM endpoints");
            return ReadAll(cmd, r => (Key: (r.GetString(0), r.GetString(1)), Port: r.GetInt32(2))).ToDictionary(x => x.Key, x => x.Port);
        });
    }

    /// <summary>Services' virtual addresses (pods), assigned once and kept for the life of the state folder.</summary>
    public IReadOnlyDictionary<string, string> ListVirtualAddresses()
    {
        lock (_gate)
        {
            using var cmd = Command("SELECT service, address FROM virtual_addresses");
            return ReadAll(cmd, r => (r.GetString(0), r.GetString(1))).ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);
        }
    }

    public void SaveVirtualAddress(string service, string address)
    {
        lock (_gate)
        {
            using var cmd = Command("INSERT INTO virtual_addresses (service, address) VALUES ($s, $a) ON CONFLICT DO UPDATE SET address = excluded.address");
            cmd.Parameters.AddWithValue("$s", service);
            cmd.Parameters.AddWithValue("$a", address);
            cmd.ExecuteNonQuery();
        }
    }

    public void SaveEndpointPort(string service, string endpoint, int port)
    {
        Locked(() =>
        {
            using var cmd = Command("INSERT INTO endpoints (service, endpoint, port) VALUES ($s, $e, $p) ON CONFLICT DO UPDATE SET port = excluded.port");
            cmd.Parameters.AddWithValue("$s", service);
            cmd.Parameters.AddWithValue("$e", endpoint);
            cmd.Parameters.AddWithValue("$p", port);
            cmd.ExecuteNonQuery();
            Wrote();
        });
    }

    /// <summary>Persists an event and returns it with its id.</summary>
    public EventRecord AppendEvent(EventRecord e)
    {
        return Locked(() =>
        {
            using var cmd = Command("INSERT INTO events (time, type, service, replica, message) VALUES ($t, $ty, $s, $r, $m) RETURNING id");
            cmd.Parameters.AddWithValue("$t", e.Time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue("$ty", e.Type);
            cmd.Parameters.AddWithValue("$s", (object?)e.Service ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$r", (object?)e.Replica ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$m", e.Message);
            var id = (long)cmd.ExecuteScalar()!;
            Wrote();
            return e with { Id = id };
        });
    }

    /// <summary>Deletes the oldest events beyond the newest <paramref name="keep"/>, at most <paramref name="batch"/> of them, and
    /// returns how many it deleted (0: nothing beyond the limit). Call again until 0; the store is free between calls.</summary>
    public int PruneEvents(int keep, int batch)
    {
        return Locked(() =>
        {
            using var cmd = Command("""
                DELETE FROM events WHERE id IN (
                    SELECT id FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET $keep)
                    ORDER BY id LIMIT $batch)
                """);
            cmd.Parameters.AddWithValue("$keep", Math.Max(1, keep));
            cmd.Parameters.AddWithValue("$batch", Math.Max(1, batch));
            var deleted = cmd.ExecuteNonQuery();
            Wrote();
            return deleted;
        });
    }

    public long CountEvents()
    {
        return Locked(() =>
        {
            return Scalar<long>("SELECT COUNT(*) FROM events");
        });
    }

    /// <summary>Events with id greater than <paramref name="afterId"/>, oldest first, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<EventRecord> ListEvents(long afterId = 0, int limit = 1000, string? service = null)
    {
        return Locked(() =>
        {
            using var cmd = Command("""
                SELECT id, time, type, service, replica, message FROM events
                WHERE id > $after AND ($s IS NULL OR service = $s) ORDER BY id LIMIT $limit
                """);
            cmd.Parameters.AddWithValue("$after", afterId);
            cmd.Parameters.AddWithValue("$s", (object?)service ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$limit", limit);
            return ReadEvents(cmd);
        });
    }

    /// <summary>The newest <paramref name="limit"/> events with id below <paramref name="beforeId"/> (all when null) and time at or after
    /// <paramref name="since"/>, returned oldest first: a page read backwards from the newest, as <c>kubectl get events</c> shows the latest.
    /// Optionally only those of one <paramref name="service"/>, one <paramref name="replica"/>, or of the given <paramref name="types"/>.</summary>
    public IReadOnlyList<EventRecord> ListNewestEvents(
        int limit, long? beforeId = null, DateTimeOffset? since = null, string? service = null, string? replica = null, IReadOnlyCollection<string>? types = null)
    {
        return Locked(() =>
        {
            // Times are stored as UTC round-trip text, which sorts as the time does.
            using var cmd = Command("""
                SELECT id, time, type, service, replica, message FROM events
                WHERE ($before IS NULL OR id < $before) AND ($since IS NULL OR time >= $since) AND ($s IS NULL OR service = $s)
                  AND ($r IS NULL OR replica = $r) AND ($types IS NULL OR type IN (SELECT value FROM json_each($types)))
                ORDER BY id DESC LIMIT $limit
                """);
            cmd.Parameters.AddWithValue("$before", (object?)beforeId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$since", since is { } t ? t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture) : DBNull.Value);
            cmd.Parameters.AddWithValue("$s", (object?)service ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$r", (object?)replica ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$types", types is null ? DBNull.Value : System.Text.Json.JsonSerializer.Serialize(types));
            cmd.Parameters.AddWithValue("$limit", limit);
            return ReadEvents(cmd).Reverse().ToList();
        });
    }

    private IReadOnlyList<EventRecord> ReadEvents(SqliteCommand cmd) =>
            ReadAll(cmd, r => new EventRecord
            {
                Id = r.GetInt64(0),
                Time = DateTimeOffset.Parse(r.GetString(1), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
                Type = r.GetString(2),
                Service = r.IsDBNull(3) ? null : r.GetString(3),
                Replica = r.IsDBNull(4) ? null : r.GetString(4),
                Message = r.GetString(5),
            });

    /// <summary>Saves one service's rollout record (the rollout controller's memory: target, last good template, state).</summary>
    public void SaveRollout(string service, string body)
    {
        Locked(() =>
        {
            using var cmd = Command("INSERT INTO rollouts (service, body) VALUES ($s, $b) ON CONFLICT(service) DO UPDATE SET body = excluded.body");
            cmd.Parameters.AddWithValue("$s", service);
            cmd.Parameters.AddWithValue("$b", body);
            cmd.ExecuteNonQuery();
            Wrote();
        });
    }

    public IReadOnlyList<string> ListRollouts()
    {
        return Locked(() =>
        {
            using var cmd = Command("SELECT body FROM rollouts ORDER BY service");
            return ReadAll(cmd, r => r.GetString(0));
        });
    }

    public void Dispose()
    {
        lock (_gate)
        {
            // A batch still open (a locked section cut short by shutdown) keeps what it wrote.
            _batch?.Commit();
            _batch?.Dispose();
            _batch = null;
            _connection.Dispose();
        }
    }

    /// <summary>Runs <paramref name="action"/> under the store's lock and turns an SQLite or disk failure into a
    /// <see cref="StateStoreException"/> that says what happened and how to fix it.</summary>
    private T Locked<T>(Func<T> action)
    {
        lock (_gate)
        {
            try
            {
                return action();
            }
            catch (Exception e) when (e is not StateStoreException && StateStoreException.From(e, Path) is { } fault)
            {
                throw fault;
            }
        }
    }

    private void Locked(Action action) => Locked(() =>
    {
        action();
        return true;
    });

    private SqliteCommand Command(string sql, SqliteTransaction? tx = null)
    {
        var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx ?? _batch;
        return cmd;
    }

    private T Scalar<T>(string sql, SqliteTransaction? tx = null)
    {
        using var cmd = Command(sql, tx);
        return (T)Convert.ChangeType(cmd.ExecuteScalar()!, typeof(T), CultureInfo.InvariantCulture);
    }

    private static List<T> ReadAll<T>(SqliteCommand cmd, Func<SqliteDataReader, T> map)
    {
        var list = new List<T>();
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            list.Add(map(reader));
        }

        return list;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
