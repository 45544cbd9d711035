namespace Berth.Cli;

/// <summary>Named process exit codes (as Aspire's ExitCodeConstants).</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The spec (or a pipeline definition) has errors.</summary>
    public const int InvalidSpec = 1;

    /// <summary><c>berth k8s diff</c>: differences were found, as <c>kubectl diff</c> exits (its errors exit above 1).</summary>
    public const int Differences = 1;

    /// <summary>Bad command line: unknown command or option, missing argument.</summary>
    public const int Usage = 2;

    /// <summary>The operation ran and failed (a rollout rolled back, a pipeline failed, a replica never became ready).</summary>
    public const int Failed = 3;

    /// <summary>Something Berth needs is not reachable: the control plane, Docker, a cluster.</summary>
    public const int Unavailable = 4;

    /// <summary>The file was not found.</summary>
    public const int NotFound = 5;

    /// <summary>The state folder's store cannot be used (read-only, damaged, on a full disk, wrong key); the message says how to fix it.</summary>
    public const int StateFault = 6;

    /// <summary>Interrupted (Ctrl-C), as shells report 128 + SIGINT.</summary>
    public const int Cancelled = 130;
}
