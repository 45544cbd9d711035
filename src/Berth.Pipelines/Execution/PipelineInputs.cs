using System.Collections.Immutable;
using System.Globalization;
using Berth.Pipelines.Definition;

namespace Berth.Pipelines.Execution;

/// <summary>The <c>inputs</c> context from <c>--input k=v</c> and the declared inputs' defaults, as workflow_dispatch.</summary>
public static class PipelineInputs
{
    /// <summary>Declared inputs with given values or defaults; booleans and numbers typed as GitHub types them. Every problem is listed.</summary>
    public static ImmutableDictionary<string, object?> Resolve(PipelineDefinition pipeline, IReadOnlyDictionary<string, string> given, out List<string> errors)
    {
        errors = [];
        var declared = pipeline.Inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        foreach (var name in given.Keys.Where(n => !declared.ContainsKey(n)))
        {
            errors.Add(declared.Count == 0
                ? $"--input {name}: pipeline {pipeline.Name} declares no inputs; add inputs: {{ {name}: {{ default: ... }} }}"
                : $"--input {name}: not an input of pipeline {pipeline.Name}; inputs: {string.Join(", ", declared.Keys)}");
        }

        var result = ImmutableDictionary.CreateBuilder<string, object?>(StringComparer.OrdinalIgnoreCase);
        foreach (var input in pipeline.Inputs)
        {
            var text = given.TryGetValue(input.Name, out var value) ? value : input.Default;
            if (text is null)
            {
                if (input.Required)
                {
                    errors.Add($"input {input.Name} is required; pass --input {input.Name}=VALUE");
                }

                result[input.Name] = input.Type == "boolean" ? false : "";
                continue;
            }

            switch (input.Type)
            {
                case "boolean" when text is "true" or "false":
                    result[input.Name] = text == "true";
                    break;
                case "boolean":
                    errors.Add($"input {input.Name} is a boolean; give true or false, got '{text}'");
                    break;
                case "number" when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number):
                    result[input.Name] = number;
                    break;
                case "number":
                    errors.Add($"input {input.Name} is a number, got '{text}'");
                    break;
                default:
                    result[input.Name] = text;
                    break;
            }
        }

        return result.ToImmutable();
    }
}
