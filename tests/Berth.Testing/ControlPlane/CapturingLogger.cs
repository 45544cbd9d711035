using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Berth.Testing.ControlPlanes;

/// <summary>Keeps warnings and errors so a failing test can show what the control plane logged.</summary>
public sealed class CapturingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<string> Lines { get; } = new();

    /// <summary>Called with each line as it is logged, on the logging thread (inside the control plane's lock for events).</summary>
    public Action<string>? OnLine { get; set; }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            var line = $"[{logLevel}] {formatter(state, exception)} {exception}";
            Lines.Enqueue(line);
            OnLine?.Invoke(line);
        }
    }
}
