
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Compares generated files with the ones checked in under Snapshots/; BERTH_UPDATE_SNAPSHOTS=1 rewrites them.</summary>
internal static class Snapshots
{
    public static string Root { get; } = Path.Combine(ProjectDirectory(), "Snapshots");

    public static bool Updating => Environment.GetEnvironmentVariable("BERTH_UPDATE_SNAPSHOTS") == "1";

    /// <summary>Writes <paramref name="set"/> to a fresh folder and asserts it equals Snapshots/<paramref name="name"/> file by file.</summary>
    public static void Verify(ManifestSet set, string name)
    {
        var expectedDir = Path.Combine(Root, name);
        if (Updating)
        {
            if (Directory.Exists(expectedDir))
            {
                Directory.Delete(expectedDir, recursive: true);
            }

            set.WriteTo(expectedDir);
            return;
        }

        var actualDir = Path.Combine(Path.GetTempPath(), $"berth-k8s-{name}-{Guid.NewGuid():N}");
        try
        {
            set.WriteTo(actualDir);
            Assert.True(Directory.Exists(expectedDir), $"no snapshot at {expectedDir}; run the tests once with BERTH_UPDATE_SNAPSHOTS=1 and review the files");
            var expectedFiles = Directory.GetFiles(expectedDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            var actualFiles = Directory.GetFiles(actualDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(expectedFiles, actualFiles);
            foreach (var file in actualFiles)
            {
                var expected = File.ReadAllText(Path.Combine(expectedDir, file!));
                var actual = File.ReadAllText(Path.Combine(actualDir, file!));
                Assert.True(expected == actual, $"{name}/{file} differs from the snapshot (BERTH_UPDATE_SNAPSHOTS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}");
            }
        }
        finally
        {
            Directory.Delete(actualDir, recursive: true);
        }
    }

    private static string ProjectDirectory([CallerFilePath] string path = "") =>
        Path.GetDirectoryName(Path.GetDirectoryName(path))!;
}
