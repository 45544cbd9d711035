namespace Berth.Mesh.Tests.Support;

/// <summary>Tests that measure latency run alone, after the parallel ones, so other tests' load cannot decide them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "Latency-sensitive";
}
