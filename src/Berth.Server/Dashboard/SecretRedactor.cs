using Berth.Orchestration.Controllers;

namespace Berth.Server.Dashboard;

/// <summary>Takes the app's secret values out of everything the dashboard sends, as <c>***</c>: masked env is not enough
/// when an app prints its own secret to its log or puts it in a span attribute. Applied to the final text (JSON and
/// log lines alike), both as written and as JSON escapes it.</summary>
internal sealed class SecretRedactor(ControlPlane plane)
{
    /// <summary>Secrets shorter than this are not searched for: "1" or "on" would mask every number or word.</summary>
    public const int MinLength = 4;

    private long _revision = -1;
    private string[] _values = [];

    public string Redact(string text)
    {
        var values = Values();
        foreach (var v in values)
        {
            if (text.Contains(v, StringComparison.Ordinal))
            {
                text = text.Replace(v, "***", StringComparison.Ordinal);
            }
        }

        return text;
    }

    private string[] Values()
    {
        var current = plane.Current;
        if (current is null)
        {
            return [];
        }

        if (Interlocked.Read(ref _revision) == current.Number)
        {
            return Volatile.Read(ref _values);
        }

        var values = current.Application.Services
            .SelectMany(s => s.SecretEnv.Where(s.Env.ContainsKey).Select(k => s.Env[k]))
            .Where(v => v.Length >= MinLength)
            .SelectMany(v => new[] { v, System.Text.Json.JsonEncodedText.Encode(v).Value })
            .Distinct(StringComparer.Ordinal)
            .OrderByDescending(v => v.Length)
            .ToArray();
        Volatile.Write(ref _values, values);
        Interlocked.Exchange(ref _revision, current.Number);
        return values;
    }
}
