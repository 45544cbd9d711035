using System.Globalization;
using System.Text.Json.Nodes;
using Berth.Orchestration.State;

namespace Berth.Chaos.Tests;

/// <summary>API fuzz (issue #14): valid requests mutated at random — a value of another type or out of range, a key removed
/// or added, the text cut or a character slipped in — seeded, so a failure repeats, and a fixed count. Every answer must
/// be a 2xx or a 4xx with a JSON error, never a 5xx, and the control plane must still answer afterwards.</summary>
[Collection("chaos")]
[Trait("Category", "Chaos")]
public sealed class ApiFuzzTests(ITestOutputHelper output)
{
    private const int Seed = 1414;
    private const int Count = 300;

    private static readonly string[] Scalars =
        ["null", "true", "\"x\"", "\"\"", "-1", "0", "1", "2", "2.5", "1e400", "99999999999", "\"3\"", "[]", "{}", "\"../../x\"", "\"\\u0000\"",
         "\"" + new string('a', 5000) + "\"", new string('[', 20) + "1" + new string(']', 20), "{\"a\":{\"b\":{\"c\":{\"d\":1}}}}"];

    [Fact]
    public async Task Fuzz_MutatedValidRequests_EveryAnswer2xxOr4xxJsonNeverA5xxAndTheControlPlaneLives()
    {
        await using var app = new ChaosApp("fuzz");
        await app.UpAsync(2);
        using var api = app.Api();
        var spec = SpecLoader.LoadFile(Path.Combine(app.Directory, "berth.yaml")).Application!;
        var valid = new (HttpMethod Method, string Path, string Body)[]
        {
            (HttpMethod.Post, "/v1/apply", JsonSerializer.Serialize(spec, StateJson.Options)),
            (HttpMethod.Post, "/v1/services/web/scale", """{"replicas": 2}"""),
            (HttpMethod.Patch, "/v1/services/web", """{"env": {"VERSION": "1"}}"""),
            (HttpMethod.Post, "/v1/services/web/rollout/undo", """{"revision": 1}"""),
        };

        var random = new Random(Seed);
        var statuses = new SortedDictionary<int, int>();
        var bad = new List<string>();
        for (var i = 0; i < Count; i++)
        {
            var (method, path, body) = valid[random.Next(valid.Length)];
            var mutated = Mutate(body, random);
            var (status, type, answer) = await api.SendAsync(method, path, mutated);
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (status >= 500 || (status >= 400 && !IsJsonError(type, answer)))
            {
                bad.Add($"#{i} {method} {path} {Cut(mutated)} → {status} {type} {Cut(answer)}");
            }
        }

        var alive = await api.SendAsync(HttpMethod.Get, "/v1/app");
        output.WriteLine($"| API fuzz: {Count} mutated requests (seed {Seed}) | statuses {string.Join(", ", statuses.Select(kv => $"{kv.Key}×{kv.Value}"))} | 5xx or non-JSON 4xx: {bad.Count} | control plane alive: {alive.Status == 200} |");
        File.AppendAllText(Path.Combine(AppContext.BaseDirectory, "chaos-results.md"),
            $"| API fuzz ({Count}, seed {Seed}) | {string.Join(", ", statuses.Select(kv => $"{kv.Key}×{kv.Value}"))} | bad {bad.Count} | alive {alive.Status} |\n");
        Assert.True(bad.Count == 0, $"{bad.Count} answers were a 5xx or a 4xx without a JSON error:\n{string.Join('\n', bad.Take(20))}");
        Assert.Equal(200, alive.Status);
    }

    private static bool IsJsonError(string? type, string body)
    {
        if (type != "application/json")
        {
            return false;
        }

        try
        {
            return JsonDocument.Parse(body).RootElement.TryGetProperty("error", out var e) && e.GetString() is { Length: > 0 };
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Cut(string text) => text.Length > 200 ? text[..200] + "…" : text;

    /// <summary>One random mutation of a valid JSON body.</summary>
    private static string Mutate(string body, Random random)
    {
        switch (random.Next(6))
        {
            case 0:
                return body[..random.Next(body.Length)]; // cut short
            case 1:
                var at = random.Next(body.Length);
                return body[..at] + "{}[],:\"\\x0 "[random.Next(11)] + body[at..]; // a character slipped in
            default:
                var root = JsonNode.Parse(body)!;
                var nodes = new List<JsonNode> { root };
                Collect(root, nodes);
                var target = nodes[random.Next(nodes.Count)];
                var parent = target.Parent;
                var replacement = JsonNode.Parse(Scalars[random.Next(Scalars.Length)]);
                switch (random.Next(3))
                {
                    case 0 when parent is JsonObject o:
                        o.Remove(target.GetPropertyName());
                        break;
                    case 1 when target is JsonObject o:
                        o["unknownKey" + random.Next(100).ToString(CultureInfo.InvariantCulture)] = replacement;
                        break;
                    default:
                        if (parent is JsonObject po)
                        {
                            po[target.GetPropertyName()] = replacement;
                        }
                        else if (parent is JsonArray pa)
                        {
                            pa[target.GetElementIndex()] = replacement;
                        }
                        else
                        {
                            return replacement?.ToJsonString() ?? "null";
                        }

                        break;
                }

                return root.ToJsonString();
        }
    }

    private static void Collect(JsonNode node, List<JsonNode> into)
    {
        IEnumerable<JsonNode?> children = node switch
        {
            JsonObject o => o.Select(kv => kv.Value),
            JsonArray a => a,
            _ => [],
        };
        foreach (var child in children.OfType<JsonNode>())
        {
            into.Add(child);
            Collect(child, into);
        }
    }
}
