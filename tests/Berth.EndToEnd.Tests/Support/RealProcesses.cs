namespace Berth.EndToEnd.Tests.Support;

/// <summary>End-to-end tests start control planes, replicas and pipelines as real processes: one at a time, so that on a
/// busy two-core machine each one's deadlines measure the system and not its neighbours.</summary>
[CollectionDefinition(Name)]
public sealed class RealProcesses
{
    public const string Name = "real processes";
}
