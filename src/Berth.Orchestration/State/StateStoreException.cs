using Microsoft.Data.Sqlite;

namespace Berth.Orchestration.State;

/// <summary>What went wrong with the state store, so the API can choose its status and the CLI its exit code.</summary>
public enum StateFault
{
    /// <summary>The file or its folder cannot be written (read-only mount, wrong owner or mode).</summary>
    ReadOnly,

    /// <summary>The file is not a database, or its pages are damaged.</summary>
    Corrupt,

    /// <summary>The disk (or quota) of the state folder is full: ENOSPC, EDQUOT, SQLITE_FULL.</summary>
    DiskFull,

    /// <summary>The file cannot be opened at all (missing folder, permissions).</summary>
    CannotOpen,

    /// <summary>Sealed secrets cannot be unsealed with the folder's key.</summary>
    Key,

    /// <summary>Another program holds the database's write lock longer than the busy timeout (SQLITE_BUSY, SQLITE_LOCKED):
    /// an open <c>sqlite3</c> shell in a transaction, a backup tool.</summary>
    Locked,

    /// <summary>Any other I/O failure of the store.</summary>
    Io,
}

/// <summary>A fault of the state store (<c>.berth/state.db</c>) in words: what happened and how to fix it, never a stack trace.</summary>
public sealed class StateStoreException : Exception
{
    public StateStoreException(string problem, string fix, StateFault fault = StateFault.Key, Exception? inner = null)
        : base($"{problem}; {fix}", inner)
    {
        Problem = problem;
        Fix = fix;
        Fault = fault;
    }

    /// <summary>What happened, e.g. "the state store .berth/state.db is read-only".</summary>
    public string Problem { get; }

    /// <summary>How to fix it.</summary>
    public string Fix { get; }

    public StateFault Fault { get; }

    /// <summary>Translates an SQLite or file-system failure on <paramref name="path"/> into words; null when it is not a store fault.</summary>
    public static StateStoreException? From(Exception e, string path)
    {
        var folder = System.IO.Path.GetDirectoryName(path) ?? ".";
        switch (e)
        {
            case StateStoreException s:
                return s;
            case SqliteException sql:
                return sql.SqliteErrorCode switch
                {
                    SqliteFull => DiskFull(path, folder, sql),
                    SqliteIoErr when HasNoRoom(folder) => DiskFull(path, folder, sql),
                    SqliteReadOnly => ReadOnly(path, folder, sql),
                    SqliteCorrupt or SqliteNotADb => Corrupt(path, sql),
                    SqliteCantOpen when HasNoRoom(folder) => DiskFull(path, folder, sql),
                    SqliteCantOpen => new StateStoreException(
                        $"the state store {path} cannot be opened ({sql.Message.TrimEnd('.')})",
                        $"check that {folder} exists and belongs to you (ls -ld {folder}); 'berth down' still stops every replica it can find",
                        StateFault.CannotOpen, sql),
                    SqliteBusy or SqliteLocked => new StateStoreException(
                        $"the state store {path} is locked by another program ({sql.Message.TrimEnd('.')})",
                        $"end what holds it (an open sqlite3 transaction, a backup: fuser -v {path}); Berth retries on its own",
                        StateFault.Locked, sql),
                    SqliteIoErr => new StateStoreException(
                        $"the state store {path} could not be read or written ({sql.Message.TrimEnd('.')})",
                        $"check the disk of {folder} (dmesg, df -h {folder}); Berth retries on its own",
                        StateFault.Io, sql),
                    _ => null,
                };
            case UnauthorizedAccessException:
                return ReadOnly(path, folder, e);
            case IOException io when IsNoSpace(io):
                return DiskFull(path, folder, io);
            case IOException io when io.HResult == ReadOnlyFileSystem:
                return ReadOnly(path, folder, io);
            default:
                return null;
        }
    }

    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;
    private const int SqliteIoErr = 10;
    private const int SqliteCorrupt = 11;
    private const int SqliteFull = 13;
    private const int SqliteCantOpen = 14;
    private const int SqliteReadOnly = 8;
    private const int SqliteNotADb = 26;

    // .NET's HResult for an errno is the errno itself on Unix (ENOSPC 28, EDQUOT 122, EROFS 30).
    private const int NoSpace = 28;
    private const int QuotaExceeded = 122;
    private const int ReadOnlyFileSystem = 30;

    private static bool IsNoSpace(IOException e) => e.HResult is NoSpace or QuotaExceeded || e.Message.Contains("No space left", StringComparison.Ordinal);

    /// <summary>SQLite reports some failed writes as an I/O error; when the folder's file system has no room, that is why.</summary>
    private static bool HasNoRoom(string folder)
    {
        try
        {
            var drive = new DriveInfo(folder);
            return drive.AvailableFreeSpace < 64 * 1024;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return false;
        }
    }

    private static StateStoreException DiskFull(string path, string folder, Exception e) => new(
        $"the disk of the state folder {folder} is full, so {System.IO.Path.GetFileName(path)} cannot be written",
        $"free space there (df -h {folder}); Berth carries on by itself once there is room, and keeps running replicas meanwhile",
        StateFault.DiskFull, e);

    private static StateStoreException ReadOnly(string path, string folder, Exception e) => new(
        $"the state store {path} is read-only ({e.Message.TrimEnd('.')})",
        $"make {folder} and the files in it writable by you (a read-only mount, or files owned by another user: ls -la {folder}); 'berth down' still stops every replica it can find",
        StateFault.ReadOnly, e);

    private static StateStoreException Corrupt(string path, Exception e) => new(
        $"the state store {path} is damaged ({e.Message.TrimEnd('.')})",
        $"run 'berth down' (it stops the replicas from the drivers' own records), then move {path} aside (mv {path} {path}.broken, with its -wal and -shm) and run 'berth up' again: the spec is the desired state, so only history and events are lost",
        StateFault.Corrupt, e);
}
