namespace Berth.Testing;

/// <summary>The base of a test class over one <see cref="AppFolder"/>, a new one for each test: after the test, whatever it
/// left running, the app is taken down and the folder deleted. (xunit v2 calls a test class's IAsyncLifetime, never its
/// IAsyncDisposable.DisposeAsync, so a class holding an AppFolder must be an IAsyncLifetime; this is that, once.)</summary>
public abstract class AppFolderTest(string prefix) : IAsyncLifetime
{
    /// <summary>This test's app folder (its name starts with the prefix given).</summary>
    protected AppFolder App { get; } = new(prefix);

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync() => App.DisposeAsync().AsTask();
}
