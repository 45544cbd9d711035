using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Berth.Core.Model;

namespace Berth.Orchestration.Controllers;

/// <summary>
/// Finds the members an app model read from JSON lacks: a key left out or null where the model has no default (a non-nullable
/// reference that stays null, a name); a list left out (a default <c>ImmutableArray</c>) becomes empty, and other text empty. 'berth up' always sends every such key; the API
/// fuzz of issue #14 found bodies without one accepted, and then a 500 on every later request about that service. Walks the
/// model's own records by reflection (settable properties only, nullability as annotated), so a member added to the model is
/// covered without a change here.
/// </summary>
internal static class ModelCompleteness
{
    private static readonly Assembly ModelAssembly = typeof(Application).Assembly;
    private static readonly ConcurrentDictionary<Type, (PropertyInfo Property, bool Nullable)[]> Members = new();

    /// <summary>Every missing member as <c>$.services[0].endpoints[0].name: missing</c>, at most <paramref name="limit"/>; lists
    /// left out are set to empty on the way.</summary>
    public static IReadOnlyList<string> Missing(Application app, int limit = 20)
    {
        var problems = new List<string>();
        Walk(app, "$", problems, limit);
        return problems;
    }

    private static void Walk(object value, string at, List<string> problems, int limit)
    {
        foreach (var (property, nullable) in MembersOf(value.GetType()))
        {
            if (problems.Count >= limit)
            {
                return;
            }

            var path = $"{at}.{JsonNamingPolicy.CamelCase.ConvertName(property.Name)}";
            var member = property.GetValue(value);
            if (member is not null && IsDefaultArray(member))
            {
                // A list left out is an empty list, as in the spec ('berth up' sends [] for none). The model was just read
                // from the request and nothing else holds it yet, so it is completed in place.
                member = property.PropertyType.GetField("Empty")!.GetValue(null)!;
                property.SetValue(value, member);
            }

            if (member is null && !nullable && property.PropertyType == typeof(string) && property.Name != "Name")
            {
                // A text left out is empty (a folder, a description); a name never is, it is what everything else is found by.
                property.SetValue(value, "");
                continue;
            }

            if (member is null)
            {
                if (!nullable && !property.PropertyType.IsValueType)
                {
                    problems.Add($"{path}: missing (null); give it a value ('berth up' always sends it)");
                }

                continue;
            }

            Visit(member, path, problems, limit);
        }
    }

    private static void Visit(object member, string path, List<string> problems, int limit)
    {
        var type = member.GetType();
        if (member is string)
        {
            return;
        }

        if (member is IDictionary dictionary)
        {
            foreach (DictionaryEntry entry in dictionary)
            {
                if (entry.Value is null)
                {
                    problems.Add($"{path}.{entry.Key}: null; give a value or leave the key out");
                }
                else if (entry.Value.GetType().Assembly == ModelAssembly)
                {
                    Visit(entry.Value, $"{path}.{entry.Key}", problems, limit);
                }
            }

            return;
        }

        if (member is IEnumerable items)
        {
            var i = 0;
            foreach (var item in items)
            {
                var at = $"{path}[{i++.ToString(CultureInfo.InvariantCulture)}]";
                if (item is null)
                {
                    if (path != "$.services")
                    {
                        // A null service is RevisionManager.Validate's own problem ("a service, not null").
                        problems.Add($"{at}: null; give a value");
                    }
                }
                else if (item.GetType().Assembly == ModelAssembly && !item.GetType().IsEnum)
                {
                    Visit(item, at, problems, limit);
                }
            }

            return;
        }

        if (type.Assembly == ModelAssembly && !type.IsEnum)
        {
            Walk(member, path, problems, limit);
        }
    }

    /// <summary>
    /// Gives every member a stored model lacks the model's own default, in place, and returns it. The store reads its
    /// records through source-generated metadata, which sets a key the JSON lacks to <c>default</c> rather than to the
    /// member's initializer; so a member added to the model after a state folder was written (develop.watch's
    /// <c>Watch</c>, for one) read back as a default <c>ImmutableArray</c>, and the first apply on that folder crashed. The
    /// default is read from a fresh instance of the record (its initializers), so a member added later is covered too.
    /// </summary>
    public static T FillDefaults<T>(T value)
        where T : class
    {
        Fill(value);
        return value;
    }

    private static readonly ConcurrentDictionary<Type, object?> Fresh = new();

    private static void Fill(object value)
    {
        var type = value.GetType();
        var fresh = Fresh.GetOrAdd(type, static t => t.GetConstructor(Type.EmptyTypes) is { } ctor ? ctor.Invoke(null) : null);
        foreach (var (property, nullable) in MembersOf(type))
        {
            var member = property.GetValue(value);
            if ((member is null && !nullable) || (member is not null && IsDefaultArray(member)))
            {
                var initial = fresh is null ? null : property.GetValue(fresh);
                if (initial is not null && !IsDefaultArray(initial))
                {
                    property.SetValue(value, initial);
                    member = initial;
                }
                else if (member is not null)
                {
                    member = property.PropertyType.GetField("Empty")!.GetValue(null)!;
                    property.SetValue(value, member);
                }
            }

            switch (member)
            {
                case null or string:
                    break;
                case IDictionary dictionary:
                    foreach (DictionaryEntry entry in dictionary)
                    {
                        if (entry.Value is { } v && v.GetType().Assembly == ModelAssembly && !v.GetType().IsEnum && !v.GetType().IsValueType)
                        {
                            Fill(v);
                        }
                    }

                    break;
                case IEnumerable items:
                    foreach (var item in items)
                    {
                        if (item is not null && item.GetType().Assembly == ModelAssembly && !item.GetType().IsEnum && !item.GetType().IsValueType)
                        {
                            Fill(item);
                        }
                    }

                    break;
                default:
                    if (member.GetType().Assembly == ModelAssembly && !member.GetType().IsEnum && !member.GetType().IsValueType)
                    {
                        Fill(member);
                    }

                    break;
            }
        }
    }

    private static bool IsDefaultArray(object member)
    {
        var type = member.GetType();
        return type.IsGenericType && type.GetGenericTypeDefinition() == typeof(System.Collections.Immutable.ImmutableArray<>)
            && (bool)type.GetProperty(nameof(System.Collections.Immutable.ImmutableArray<int>.IsDefault))!.GetValue(member)!;
    }

    private static (PropertyInfo Property, bool Nullable)[] MembersOf(Type type) => Members.GetOrAdd(type, static t =>
    {
        var context = new NullabilityInfoContext();
        return [.. t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanRead && p.CanWrite && p.GetIndexParameters().Length == 0)
            .Select(p => (p, context.Create(p).WriteState != NullabilityState.NotNull))];
    });
}
