using Microsoft.Data.Sqlite;

namespace Berth.Pipelines.Tests.Storage;

public sealed class RunStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-runstore-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Open_DatabaseFromBeforeJobNeeds_AddsTheColumnAndKeepsOldJobs()
    {
        var path = Path.Combine(_dir, "pipelines.db");
        using (var old = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            old.Open();
            using var create = old.CreateCommand();
            create.CommandText = """
                CREATE TABLE jobs (run_id INTEGER NOT NULL, key TEXT NOT NULL, job_id TEXT NOT NULL, matrix TEXT NOT NULL, status TEXT NOT NULL,
                  started TEXT, finished TEXT, message TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, PRIMARY KEY (run_id, key));
                INSERT INTO jobs (run_id, key, job_id, matrix, status, seq) VALUES (1, 'build', 'build', '', 'succeeded', 0);
                """;
            create.ExecuteNonQuery();
        }

        using var store = new RunStore(path);
        store.SaveJob(1, "test", "test", "", RunStatus.Queued, null, null, "", ["build"]);
        store.SaveJob(1, "test", "test", "", RunStatus.Succeeded, null, null, "done");

        var jobs = store.GetJobs(1);
        Assert.Equal(["build", "test"], jobs.Select(j => j.Key));
        Assert.Empty(jobs[0].Needs);
        Assert.Equal(["build"], jobs[1].Needs);
        Assert.Equal(RunStatus.Succeeded, jobs[1].Status);
    }
}
