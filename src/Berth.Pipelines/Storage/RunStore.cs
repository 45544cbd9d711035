using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Berth.Pipelines.Storage;

/// <summary>Run, job and step states as stored and shown.</summary>
public static class RunStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Waiting = "waiting";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Skipped = "skipped";
    public const string TimedOut = "timed-out";

    /// <summary>A job taken over from the run a rerun repeats: it succeeded there and nothing it needs runs again.</summary>
    public const string Reused = "reused";

    public static bool IsFinal(string status) => status is not (Queued or Running or Waiting);

    public static bool IsSuccess(string status) => status is Succeeded or Reused;
}

public sealed record RunRecord(
    long Id, string Pipeline, string File, string Status, string Trigger, string Branch, long? RerunOf,
    DateTimeOffset Created, DateTimeOffset? Finished, int OwnerPid, bool CancelRequested)
{
    public TimeSpan? Duration => Finished - Created;
}

public sealed record JobRecord(
    long RunId, string Key, string JobId, string Matrix, string Status, DateTimeOffset? Started, DateTimeOffset? Finished, string Message)
{
    /// <summary>The ids of the jobs this one needs (its <c>needs:</c>), for drawing the run's job graph; every instance of a matrix job has the same.</summary>
    public IReadOnlyList<string> Needs { get; init; } = [];

    public TimeSpan? Duration => Finished - Started;
}

public sealed record StepRecord(
    long RunId, string JobKey, int Index, string Name, string Kind, string Status, int? ExitCode, int Attempts,
    DateTimeOffset? Started, DateTimeOffset? Finished, string Summary)
{
    public TimeSpan? Duration => Finished - Started;
}

/// <summary>A workflow command's message (error, warning, notice) with where it points, or a step summary.</summary>
public sealed record Annotation(long RunId, string JobKey, int StepIndex, string Level, string? File, int? Line, int? Column, string? Title, string Message);

/// <summary>One run or job in a concurrency group: pending, running, or superseded by a newer pending one.</summary>
public sealed record GroupEntry(long Id, long RunId, string JobKey, string State, bool CancelRequested);

public sealed record LogRecord(long Seq, string JobKey, int StepIndex, string Stream, string Text, DateTimeOffset Time);

/// <summary>
/// Pipeline runs in SQLite (<c>pipelines.db</c> in the state folder), in WAL mode so that <c>berth pipeline
/// cancel|approve|show</c> from another terminal read and write while a run is going.
/// Only already-masked text is ever handed to this store.
/// </summary>
public sealed class RunStore : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();

    public RunStore(string databasePath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(databasePath))!);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString());
        _connection.Open();
        Execute("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            PRAGMA busy_timeout = 10000;
            CREATE TABLE IF NOT EXISTS runs (
              id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, file TEXT NOT NULL, status TEXT NOT NULL,
              trigger TEXT NOT NULL, branch TEXT NOT NULL, rerun_of INTEGER, created TEXT NOT NULL, finished TEXT,
              owner_pid INTEGER NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS jobs (
              run_id INTEGER NOT NULL, key TEXT NOT NULL, job_id TEXT NOT NULL, matrix TEXT NOT NULL, status TEXT NOT NULL,
              started TEXT, finished TEXT, message TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, needs TEXT NOT NULL DEFAULT '',
              PRIMARY KEY (run_id, key));
            CREATE TABLE IF NOT EXISTS steps (
              run_id INTEGER NOT NULL, job_key TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
              status TEXT NOT NULL, exit_code INTEGER, attempts INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT,
              summary TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, job_key, idx));
            CREATE TABLE IF NOT EXISTS logs (
              seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, job_key TEXT NOT NULL, step_idx INTEGER NOT NULL,
              stream TEXT NOT NULL, text TEXT NOT NULL, time TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, job_key, seq);
            CREATE TABLE IF NOT EXISTS approvals (
              run_id INTEGER NOT NULL, job_key TEXT NOT NULL, approved_at TEXT NOT NULL, PRIMARY KEY (run_id, job_key));
            CREATE TABLE IF NOT EXISTS annotations (
              seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, job_key TEXT NOT NULL, step_idx INTEGER NOT NULL,
              level TEXT NOT NULL, file TEXT, line INTEGER, col INTEGER, title TEXT, message TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS concurrency (
              seq INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, run_id INTEGER NOT NULL, job_key TEXT NOT NULL,
              state TEXT NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0);
            """);
        // A database written before jobs kept their needs: the column is added, and those runs' jobs have none recorded.
        if ((long)Scalar("SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'needs'")! == 0)
        {
            Execute("ALTER TABLE jobs ADD COLUMN needs TEXT NOT NULL DEFAULT ''");
        }
    }

    public long CreateRun(string pipeline, string file, string trigger, string branch, long? rerunOf, DateTimeOffset now) =>
        (long)Scalar(
            "INSERT INTO runs (pipeline, file, status, trigger, branch, rerun_of, created, owner_pid) VALUES ($p, $f, $s, $t, $b, $r, $c, $pid) RETURNING id",
            ("$p", pipeline), ("$f", file), ("$s", RunStatus.Running), ("$t", trigger), ("$b", branch), ("$r", rerunOf), ("$c", Format(now)), ("$pid", Environment.ProcessId))!;

    public void FinishRun(long runId, string status, DateTimeOffset now) =>
        Execute("UPDATE runs SET status = $s, finished = $f WHERE id = $id", ("$s", status), ("$f", Format(now)), ("$id", runId));

    /// <summary>Adds a job to the run, or updates its status; <paramref name="needs"/> (job ids) is kept from when the job is added.</summary>
    public void SaveJob(long runId, string key, string jobId, string matrix, string status, DateTimeOffset? started, DateTimeOffset? finished, string message, IReadOnlyList<string>? needs = null) =>
        Execute("""
            INSERT INTO jobs (run_id, key, job_id, matrix, status, started, finished, message, seq, needs)
            VALUES ($r, $k, $j, $m, $s, $st, $fi, $msg, (SELECT COUNT(*) FROM jobs WHERE run_id = $r), $needs)
            ON CONFLICT (run_id, key) DO UPDATE SET status = $s, started = $st, finished = $fi, message = $msg
            """,
            ("$r", runId), ("$k", key), ("$j", jobId), ("$m", matrix), ("$s", status), ("$st", Format(started)), ("$fi", Format(finished)), ("$msg", message),
            ("$needs", string.Join(',', needs ?? [])));

    public void SaveStep(StepRecord step) =>
        Execute("""
            INSERT INTO steps (run_id, job_key, idx, name, kind, status, exit_code, attempts, started, finished, summary)
            VALUES ($r, $k, $i, $n, $kind, $s, $e, $a, $st, $fi, $sum)
            ON CONFLICT (run_id, job_key, idx) DO UPDATE SET status = $s, exit_code = $e, attempts = $a, started = $st, finished = $fi, summary = $sum
            """,
            ("$r", step.RunId), ("$k", step.JobKey), ("$i", step.Index), ("$n", step.Name), ("$kind", step.Kind), ("$s", step.Status),
            ("$e", step.ExitCode), ("$a", step.Attempts), ("$st", Format(step.Started)), ("$fi", Format(step.Finished)), ("$sum", step.Summary));

    public void AppendLog(long runId, string jobKey, int stepIndex, string stream, string text, DateTimeOffset now) =>
        Execute("INSERT INTO logs (run_id, job_key, step_idx, stream, text, time) VALUES ($r, $k, $i, $s, $t, $time)",
            ("$r", runId), ("$k", jobKey), ("$i", stepIndex), ("$s", stream), ("$t", text), ("$time", Format(now)));

    public void RequestCancel(long runId) => Execute("UPDATE runs SET cancel_requested = 1 WHERE id = $id", ("$id", runId));

    public bool IsCancelRequested(long runId) => Convert.ToInt64(Scalar("SELECT cancel_requested FROM runs WHERE id = $id", ("$id", runId)) ?? 0L, CultureInfo.InvariantCulture) == 1;

    /// <summary>Releases approve gates of the run: of one job, or all when <paramref name="jobKey"/> is "*".</summary>
    public void Approve(long runId, string jobKey, DateTimeOffset now) =>
        Execute("INSERT OR REPLACE INTO approvals (run_id, job_key, approved_at) VALUES ($r, $k, $t)", ("$r", runId), ("$k", jobKey), ("$t", Format(now)));

    public bool IsApproved(long runId, string jobKey) =>
        Scalar("SELECT 1 FROM approvals WHERE run_id = $r AND (job_key = $k OR job_key = '*')", ("$r", runId), ("$k", jobKey)) is not null;

    public RunRecord? GetRun(long runId) => Query("SELECT * FROM runs WHERE id = $id", ReadRun, ("$id", runId)).FirstOrDefault();

    public IReadOnlyList<RunRecord> ListRuns(int limit) => Query("SELECT * FROM runs ORDER BY id DESC LIMIT $l", ReadRun, ("$l", limit));

    public IReadOnlyList<JobRecord> GetJobs(long runId) => Query("SELECT * FROM jobs WHERE run_id = $r ORDER BY seq", r => new JobRecord(
        r.GetInt64(r.GetOrdinal("run_id")), r.GetString(r.GetOrdinal("key")), r.GetString(r.GetOrdinal("job_id")), r.GetString(r.GetOrdinal("matrix")),
        r.GetString(r.GetOrdinal("status")), Time(r, "started"), Time(r, "finished"), r.GetString(r.GetOrdinal("message")))
    {
        Needs = r.GetString(r.GetOrdinal("needs")).Split(',', StringSplitOptions.RemoveEmptyEntries),
    }, ("$r", runId));

    public IReadOnlyList<StepRecord> GetSteps(long runId) => Query("SELECT * FROM steps WHERE run_id = $r ORDER BY job_key, idx", r => new StepRecord(
        r.GetInt64(r.GetOrdinal("run_id")), r.GetString(r.GetOrdinal("job_key")), r.GetInt32(r.GetOrdinal("idx")), r.GetString(r.GetOrdinal("name")),
        r.GetString(r.GetOrdinal("kind")), r.GetString(r.GetOrdinal("status")),
        r.IsDBNull(r.GetOrdinal("exit_code")) ? null : r.GetInt32(r.GetOrdinal("exit_code")), r.GetInt32(r.GetOrdinal("attempts")),
        Time(r, "started"), Time(r, "finished"), r.GetString(r.GetOrdinal("summary"))), ("$r", runId));

    public IReadOnlyList<LogRecord> GetLogs(long runId, string? jobKey, long afterSeq = 0) => Query(
        "SELECT * FROM logs WHERE run_id = $r AND ($k IS NULL OR job_key = $k OR job_key LIKE $k || ' (%') AND seq > $after ORDER BY seq",
        r => new LogRecord(r.GetInt64(r.GetOrdinal("seq")), r.GetString(r.GetOrdinal("job_key")), r.GetInt32(r.GetOrdinal("step_idx")),
            r.GetString(r.GetOrdinal("stream")), r.GetString(r.GetOrdinal("text")), Time(r, "time")!.Value),
        ("$r", runId), ("$k", jobKey), ("$after", afterSeq));

    /// <summary>An <c>::error::</c>, <c>::warning::</c> or <c>::notice::</c> of a step, or its step summary (level "summary").</summary>
    public void AddAnnotation(Annotation a) =>
        Execute("INSERT INTO annotations (run_id, job_key, step_idx, level, file, line, col, title, message) VALUES ($r, $k, $i, $l, $f, $li, $c, $t, $m)",
            ("$r", a.RunId), ("$k", a.JobKey), ("$i", a.StepIndex), ("$l", a.Level), ("$f", a.File), ("$li", a.Line), ("$c", a.Column), ("$t", a.Title), ("$m", a.Message));

    public IReadOnlyList<Annotation> GetAnnotations(long runId) => Query("SELECT * FROM annotations WHERE run_id = $r ORDER BY seq", r => new Annotation(
        r.GetInt64(r.GetOrdinal("run_id")), r.GetString(r.GetOrdinal("job_key")), r.GetInt32(r.GetOrdinal("step_idx")), r.GetString(r.GetOrdinal("level")),
        r.IsDBNull(r.GetOrdinal("file")) ? null : r.GetString(r.GetOrdinal("file")),
        r.IsDBNull(r.GetOrdinal("line")) ? null : r.GetInt32(r.GetOrdinal("line")),
        r.IsDBNull(r.GetOrdinal("col")) ? null : r.GetInt32(r.GetOrdinal("col")),
        r.IsDBNull(r.GetOrdinal("title")) ? null : r.GetString(r.GetOrdinal("title")),
        r.GetString(r.GetOrdinal("message"))), ("$r", runId));

    /// <summary>Joins a concurrency group as pending; returns the entry's id.</summary>
    public long JoinGroup(string group, long runId, string jobKey) =>
        (long)Scalar("INSERT INTO concurrency (grp, run_id, job_key, state) VALUES ($g, $r, $k, 'pending') RETURNING seq", ("$g", group), ("$r", runId), ("$k", jobKey))!;

    /// <summary>The entries of a group whose runs are still running, oldest first.</summary>
    public IReadOnlyList<GroupEntry> GroupEntries(string group) => Query("""
        SELECT c.seq, c.run_id, c.job_key, c.state, c.cancel_requested FROM concurrency c JOIN runs r ON r.id = c.run_id
        WHERE c.grp = $g AND r.status = 'running' ORDER BY c.seq
        """,
        r => new GroupEntry(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetInt64(4) == 1), ("$g", group));

    /// <summary>Takes the group for <paramref name="entry"/> when no other entry of a running run holds it: one statement, so two processes cannot both take it.</summary>
    public bool TryTakeGroup(string group, long entry)
    {
        lock (_lock)
        {
            using var command = Command("""
                UPDATE concurrency SET state = 'running' WHERE seq = $e AND state = 'pending' AND NOT EXISTS (
                  SELECT 1 FROM concurrency c JOIN runs r ON r.id = c.run_id
                  WHERE c.grp = $g AND c.state = 'running' AND c.seq != $e AND r.status = 'running')
                """, [("$e", entry), ("$g", group)]);
            return command.ExecuteNonQuery() == 1;
        }
    }

    public void DeleteJob(long runId, string key) => Execute("DELETE FROM jobs WHERE run_id = $r AND key = $k", ("$r", runId), ("$k", key));

    public void SetGroupState(long entry, string state) => Execute("UPDATE concurrency SET state = $s WHERE seq = $e", ("$s", state), ("$e", entry));

    public void RequestGroupCancel(long entry) => Execute("UPDATE concurrency SET cancel_requested = 1 WHERE seq = $e", ("$e", entry));

    public GroupEntry? GetGroupEntry(long entry) => Query("SELECT seq, run_id, job_key, state, cancel_requested FROM concurrency WHERE seq = $e",
        r => new GroupEntry(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetInt64(4) == 1), ("$e", entry)).FirstOrDefault();

    public void LeaveGroup(long entry) => Execute("DELETE FROM concurrency WHERE seq = $e", ("$e", entry));

    public void Dispose() => _connection.Dispose();

    private static RunRecord ReadRun(SqliteDataReader r) => new(
        r.GetInt64(r.GetOrdinal("id")), r.GetString(r.GetOrdinal("pipeline")), r.GetString(r.GetOrdinal("file")), r.GetString(r.GetOrdinal("status")),
        r.GetString(r.GetOrdinal("trigger")), r.GetString(r.GetOrdinal("branch")),
        r.IsDBNull(r.GetOrdinal("rerun_of")) ? null : r.GetInt64(r.GetOrdinal("rerun_of")),
        Time(r, "created")!.Value, Time(r, "finished"), r.GetInt32(r.GetOrdinal("owner_pid")), r.GetInt64(r.GetOrdinal("cancel_requested")) == 1);

    private static DateTimeOffset? Time(SqliteDataReader r, string column)
    {
        var ordinal = r.GetOrdinal(column);
        return r.IsDBNull(ordinal) ? null : DateTimeOffset.Parse(r.GetString(ordinal), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
    }

    private static string? Format(DateTimeOffset? time) => time?.ToString("O", CultureInfo.InvariantCulture);

    private SqliteCommand Command(string sql, (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    private void Execute(string sql, params (string, object?)[] parameters)
    {
        lock (_lock)
        {
            using var command = Command(sql, parameters);
            command.ExecuteNonQuery();
        }
    }

    private object? Scalar(string sql, params (string, object?)[] parameters)
    {
        lock (_lock)
        {
            using var command = Command(sql, parameters);
            var value = command.ExecuteScalar();
            return value is DBNull ? null : value;
        }
    }

    private List<T> Query<T>(string sql, Func<SqliteDataReader, T> read, params (string, object?)[] parameters)
    {
        lock (_lock)
        {
            using var command = Command(sql, parameters);
            using var reader = command.ExecuteReader();
            var result = new List<T>();
            while (reader.Read())
            {
                result.Add(read(reader));
            }

            return result;
        }
    }
}
