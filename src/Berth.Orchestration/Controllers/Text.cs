using System.Globalization;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>How the control plane words phases and durations in events and errors.</summary>
internal static class Text
{
    public static string Describe(ReplicaRecord r) => r.Reason is null ? Kebab(r.Phase) : $"{Kebab(r.Phase)}: {r.Reason}";

    public static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>850ms, 1.973s, 2m5s: short and exact enough for events.</summary>
    public static string Human(TimeSpan t) =>
        t < TimeSpan.FromSeconds(1) ? $"{Math.Round(t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)}ms"
        : t < TimeSpan.FromMinutes(1) ? $"{Math.Round(t.TotalSeconds, 3).ToString("0.###", CultureInfo.InvariantCulture)}s"
        : Durations.Format(TimeSpan.FromSeconds(Math.Round(t.TotalSeconds)));
}
