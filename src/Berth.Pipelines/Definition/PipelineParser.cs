using System.Collections.Immutable;
using System.Globalization;
using System.Text.RegularExpressions;
using Berth.Core.Loading;
using Berth.Core.Model;
using Berth.Pipelines.Expressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Pipelines.Definition;

/// <summary>The pipelines of one file and every problem found in them.</summary>
public sealed record PipelineParseResult(ImmutableArray<PipelineDefinition> Pipelines, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool Succeeded => !Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);

    public PipelineDefinition? Find(string name) => Pipelines.FirstOrDefault(p => p.Name == name);
}

/// <summary>
/// Reads <c>pipelines:</c> from a spec or a pipelines file with YamlDotNet's representation model and Core's key
/// tables, so every problem is reported with file:line:column and unknown keys with the closest known one — all at
/// once, before anything runs.
/// </summary>
public static partial class PipelineParser
{
    public static PipelineParseResult ParseFile(string path)
    {
        var full = Path.GetFullPath(path);
        return ParseText(File.ReadAllText(full), full);
    }

    /// <summary>Parses <paramref name="text"/>; <paramref name="fileName"/> names it in diagnostics and its folder is the base folder.</summary>
    public static PipelineParseResult ParseText(string text, string fileName)
    {
        var reader = new Reader(fileName);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            reader.Error(e.Start.Line, e.Start.Column, "", $"not valid YAML: {e.InnerException?.Message ?? e.Message}");
            return new PipelineParseResult([], reader.Diagnostics);
        }

        var pipelines = ImmutableArray.CreateBuilder<PipelineDefinition>();
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            reader.Error(1, 1, "", "expected a mapping with a pipelines: key");
            return new PipelineParseResult([], reader.Diagnostics);
        }

        // berth.yaml: pipelines:; a Compose file: x-berth: { pipelines: }.
        var node = Get(root, "pipelines") ?? (Get(root, "x-berth") is YamlMappingNode berth ? Get(berth, "pipelines") : null);
        if (node is null)
        {
            reader.Error(root, "", "no pipelines: key; declare pipelines as pipelines: { NAME: { jobs: ... } } (x-berth: { pipelines: ... } in a Compose file)");
        }
        else if (node is YamlMappingNode map)
        {
            foreach (var (key, value) in map.Children)
            {
                var name = ((YamlScalarNode)key).Value ?? "";
                if (value is YamlScalarNode { Value.Length: > 0 } reference)
                {
                    // pipelines: { ci: pipelines/ci.yaml } — the file holds the pipeline itself (jobs:, on:, ...).
                    if (reader.ParseReferenced(name, reference, $"pipelines.{name}") is { } referenced)
                    {
                        pipelines.Add(referenced);
                    }
                }
                else if (reader.Expect<YamlMappingNode>(value, $"pipelines.{name}", "a mapping with jobs: (or the path of a file holding the pipeline)") is { } body)
                {
                    pipelines.Add(reader.ParsePipeline(name, key, body));
                }
            }
        }
        else
        {
            reader.Error(node, "pipelines", "expected a mapping of pipeline names to pipelines");
        }

        return new PipelineParseResult(pipelines.ToImmutable(), reader.Diagnostics);
    }

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_-]*$")]
    private static partial Regex IdPattern();

    /// <summary>What a pipeline's keys are read into; the jobs need the secrets and inputs first, so they are read last.</summary>
    private sealed class PipelineDraft(PipelineDefinition value)
    {
        public PipelineDefinition V { get; set; } = value;

        public YamlNode? Jobs { get; set; }

        public ExpressionScope Scope { get; set; } = new();
    }

    private sealed class JobDraft(JobDefinition value, ExpressionScope scope)
    {
        public JobDefinition V { get; set; } = value;

        public ExpressionScope Scope { get; set; } = scope;

        public YamlNode? Steps { get; set; }
    }

    /// <summary>A step while its keys are read: the shared settings, and the one node that says its kind.</summary>
    private sealed class StepDraft(ExpressionScope scope)
    {
        public ExpressionScope Scope { get; } = scope;

        public List<(string Kind, YamlNode Value)> Kinds { get; } = [];

        public string? Name { get; set; }

        public Template? NameTemplate { get; set; }

        public string? Id { get; set; }

        public YamlNode? Shell { get; set; }

        public YamlNode? Results { get; set; }

        public ImmutableArray<EnvEntry> Env { get; set; } = [];

        public string? WorkingDirectory { get; set; }

        public Expr? If { get; set; }

        public TimeoutValue Timeout { get; set; } = TimeoutValue.None;

        public RetryPolicy Retry { get; set; } = RetryPolicy.None;

        public Flag ContinueOnError { get; set; } = Flag.False;
    }

    private static readonly string[] StepKindKeys = ["run", "test", "build-image", "deploy", "approve"];

    private static readonly KeyTable<Reader, PipelineDraft> PipelineKeys = new("a pipeline")
    {
        ["name"] = (r, v, p, d) => r.Scalar(v, p),
        ["run-name"] = (r, v, p, d) => r.TemplateOf(v, p, d.Scope),
        ["on"] = (r, v, p, d) => d.V = d.V with { On = r.ParseTriggers(v, p, d) },
        ["env"] = (r, v, p, d) => d.V = d.V with { Env = r.EnvMap(v, p, d.Scope) },
        ["secrets"] = (r, v, p, d) => { },
        ["inputs"] = (r, v, p, d) => d.V = d.V with { Inputs = d.V.Inputs.AddRange(r.ParseInputs(v, p)) },
        ["defaults"] = (r, v, p, d) => d.V = d.V with { Defaults = r.ParseDefaults(v, p) },
        ["concurrency"] = (r, v, p, d) => d.V = d.V with { Concurrency = r.ParseConcurrency(v, p, d.Scope) },
        ["permissions"] = (r, v, p, d) => r.Warning(v, p, "permissions: is ignored: there is no GITHUB_TOKEN on this machine"),
        ["max-parallel"] = (r, v, p, d) => d.V = d.V with { MaxParallel = r.PositiveInt(v, p) ?? PipelineDefaults.MaxParallel },
        ["timeout"] = (r, v, p, d) => d.V = d.V with { Timeout = r.Duration(v, p) },
        ["timeout-minutes"] = (r, v, p, d) => d.V = d.V with { Timeout = r.PositiveInt(v, p) is { } m ? TimeSpan.FromMinutes(m) : null },
        ["jobs"] = (r, v, p, d) => d.Jobs = v,
    };

    private static readonly KeyTable<Reader, JobDraft> JobKeys = new("a job")
    {
        ["name"] = (r, v, p, d) => d.V = d.V with { DisplayName = r.TemplateOf(v, p, d.Scope) },
        ["needs"] = (r, v, p, d) => d.V = d.V with { Needs = [.. r.StringList(v, p, allowScalar: true).Select(n => (n.Value, r.At(n.Node)))] },
        ["if"] = (r, v, p, d) => d.V = d.V with { If = r.Condition(v, p, d.Scope) },
        ["env"] = (r, v, p, d) => d.V = d.V with { Env = r.EnvMap(v, p, d.Scope) },
        ["outputs"] = (r, v, p, d) => d.V = d.V with { Outputs = r.EnvMap(v, p, d.Scope with { StatusFunctions = false }) },
        ["working-directory"] = (r, v, p, d) => d.V = d.V with { WorkingDirectory = r.TemplateText(v, p, d.Scope) },
        ["defaults"] = (r, v, p, d) => d.V = d.V with { Defaults = r.ParseDefaults(v, p) },
        ["concurrency"] = (r, v, p, d) => d.V = d.V with { Concurrency = r.ParseConcurrency(v, p, d.Scope) },
        ["timeout"] = (r, v, p, d) => d.V = d.V with { Timeout = new TimeoutValue(r.Duration(v, p)) },
        ["timeout-minutes"] = (r, v, p, d) => d.V = d.V with { Timeout = r.TimeoutMinutes(v, p, d.Scope) },
        ["continue-on-error"] = (r, v, p, d) => d.V = d.V with { ContinueOnError = r.FlagOf(v, p, d.Scope) ?? Flag.False },
        ["strategy"] = (r, v, p, d) => { }, // read first: the other keys' expressions need the matrix keys
        ["artifacts"] = (r, v, p, d) => d.V = d.V with { Artifacts = [.. r.StringList(v, p, allowScalar: true).Select(a => a.Value)] },
        ["cache"] = (r, v, p, d) => d.V = d.V with { Cache = r.ParseCache(v, p, d.Scope) },
        ["workspace"] = (r, v, p, d) => d.V = d.V with { IsolatedWorkspace = r.ParseWorkspace(v, p) },
        ["steps"] = (r, v, p, d) => d.Steps = v,
        ["runs-on"] = (r, v, p, d) => { }, // every job runs on this machine
        ["permissions"] = (r, v, p, d) => r.Warning(v, p, "permissions: is ignored: there is no GITHUB_TOKEN on this machine"),
        ["environment"] = (r, v, p, d) => r.Warning(v, p, "environment: is ignored: Berth has no deployment environments; guard the job with an approve: step"),
        ["services"] = (r, v, p, d) => r.Error(v, p, "job services: are not supported; declare the service in berth.yaml (berth up runs it) and reach it on its stable port"),
        ["container"] = (r, v, p, d) => r.Error(v, p, "container: is not supported: steps run on this machine; run a container in a step (docker run ...) or add a service to berth.yaml"),
        ["uses"] = (r, v, p, d) => r.Error(v, p, $"uses: '{(v as YamlScalarNode)?.Value}' calls a reusable workflow, which is not supported; copy its jobs into this pipeline"),
        ["with"] = (r, v, p, d) => { },
        ["secrets"] = (r, v, p, d) => r.Error(v, p, "secrets: on a job passes secrets to a reusable workflow, which is not supported; declare secrets at the pipeline's secrets:"),
    };

    private static readonly KeyTable<Reader, StepDraft> StepKeys = CreateStepKeys();

    private static KeyTable<Reader, StepDraft> CreateStepKeys()
    {
        var keys = new KeyTable<Reader, StepDraft>("a step")
        {
            ["name"] = (r, v, p, d) =>
            {
                d.Name = r.Scalar(v, p);
                d.NameTemplate = r.TemplateOf(v, p, d.Scope) is { HasExpressions: true } t ? t : null;
            },
            ["id"] = (r, v, p, d) => d.Id = r.StepId(v, p),
            ["shell"] = (r, v, p, d) => d.Shell = v,
            ["results"] = (r, v, p, d) => d.Results = v,
            ["env"] = (r, v, p, d) => d.Env = r.EnvMap(v, p, d.Scope),
            ["working-directory"] = (r, v, p, d) => d.WorkingDirectory = r.TemplateText(v, p, d.Scope),
            ["if"] = (r, v, p, d) => d.If = r.Condition(v, p, d.Scope),
            ["timeout"] = (r, v, p, d) => d.Timeout = new TimeoutValue(r.Duration(v, p)),
            ["timeout-minutes"] = (r, v, p, d) => d.Timeout = r.TimeoutMinutes(v, p, d.Scope),
            ["retry"] = (r, v, p, d) => d.Retry = r.ParseRetry(v, p),
            ["continue-on-error"] = (r, v, p, d) => d.ContinueOnError = r.FlagOf(v, p, d.Scope) ?? Flag.False,
            ["with"] = (r, v, p, d) => { }, // reported with uses:
            ["uses"] = (r, v, p, d) => { }, // reported once the step's name is known
        };
        foreach (var kind in StepKindKeys)
        {
            keys[kind] = (r, v, p, d) => d.Kinds.Add((kind, v));
        }

        return keys;
    }

    private sealed class Reader(string file, string? baseDirectory = null)
    {
        private readonly string _file = file;
        private readonly string _baseDirectory = baseDirectory ?? Path.GetDirectoryName(Path.GetFullPath(file)) ?? Environment.CurrentDirectory;

        public List<Diagnostic> Diagnostics { get; } = [];

        /// <summary>A pipeline in a file of its own, named from the spec; its steps run in the spec's folder.</summary>
        public PipelineDefinition? ParseReferenced(string name, YamlScalarNode reference, string path)
        {
            var full = Path.GetFullPath(reference.Value!, _baseDirectory);
            if (!File.Exists(full))
            {
                Error(reference, path, $"pipeline file '{reference.Value}' does not exist (looked for {full})");
                return null;
            }

            var reader = new Reader(full, _baseDirectory);
            var stream = new YamlStream();
            try
            {
                stream.Load(new StringReader(File.ReadAllText(full)));
            }
            catch (YamlException e)
            {
                reader.Error(e.Start.Line, e.Start.Column, "", $"not valid YAML: {e.InnerException?.Message ?? e.Message}");
                Diagnostics.AddRange(reader.Diagnostics);
                return null;
            }

            PipelineDefinition? pipeline = null;
            if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            {
                reader.Error(1, 1, "", "expected a pipeline: a mapping with jobs:");
            }
            else
            {
                pipeline = reader.ParsePipeline(name, root, root) with { Position = reader.At(root) };
            }

            Diagnostics.AddRange(reader.Diagnostics);
            return pipeline;
        }

        public void Error(long line, long column, string path, string message) =>
            Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, _file, (int)line, (int)column, path, message));

        public void Error(YamlNode node, string path, string message) => Error(node.Start.Line, node.Start.Column, path, message);

        public void Warning(YamlNode node, string path, string message) =>
            Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Warning, _file, (int)node.Start.Line, (int)node.Start.Column, path, message));

        public SourcePosition At(YamlNode node) => new(_file, (int)node.Start.Line, (int)node.Start.Column);

        public T? Expect<T>(YamlNode node, string path, string what)
            where T : YamlNode
        {
            if (node is T typed)
            {
                return typed;
            }

            Error(node, path, $"expected {what}, got {Describe(node)}");
            return null;
        }

        private static string Describe(YamlNode node) => node switch
        {
            YamlScalarNode s => string.IsNullOrEmpty(s.Value) && s.Style == ScalarStyle.Plain ? "nothing" : $"'{s.Value}'",
            YamlSequenceNode => "a list",
            _ => "a mapping",
        };

        /// <summary>Reads a mapping through a key table; unknown keys get "did you mean" and their position.</summary>
        private void ReadKeys<T>(YamlMappingNode map, string path, KeyTable<Reader, T> table, T target) =>
            table.Read(this, map, path, target, Error);

        public PipelineDefinition ParsePipeline(string name, YamlNode keyNode, YamlMappingNode body)
        {
            var path = $"pipelines.{name}";
            var secrets = StringList(Get(body, "secrets"), path + ".secrets");
            foreach (var (secret, node) in secrets)
            {
                if (!IdPattern().IsMatch(secret))
                {
                    Error(node, path + ".secrets", $"'{secret}' is not a valid secret name (letters, digits, _ and -)");
                }
            }

            var draft = new PipelineDraft(new PipelineDefinition(name, At(keyNode)) { BaseDirectory = _baseDirectory, Secrets = [.. secrets.Select(s => s.Value)] })
            {
                Scope = new ExpressionScope { SecretNames = [.. secrets.Select(s => s.Value)] },
            };
            ReadKeys(body, path, PipelineKeys, draft);
            var pipeline = draft.V;
            if (draft.Jobs is null)
            {
                Error(body, path, "a pipeline needs jobs:; add jobs: { build: { steps: [ { run: ... } ] } }");
                return pipeline;
            }

            if (Expect<YamlMappingNode>(draft.Jobs, path + ".jobs", "a mapping of job ids to jobs") is not { } jobsMap)
            {
                return pipeline;
            }

            var jobs = ImmutableArray.CreateBuilder<JobDefinition>();
            foreach (var (key, value) in jobsMap.Children)
            {
                var id = ((YamlScalarNode)key).Value ?? "";
                if (!IdPattern().IsMatch(id))
                {
                    Error(key, path + ".jobs", $"'{id}' is not a valid job id; start with a letter or _, then letters, digits, _ or -");
                }

                if (Expect<YamlMappingNode>(value, $"{path}.jobs.{id}", "a mapping with steps:") is { } job)
                {
                    jobs.Add(ParseJob(id, key, job, $"{path}.jobs.{id}", draft.Scope));
                }
            }

            pipeline = pipeline with { Jobs = jobs.ToImmutable() };
            return CheckGraph(pipeline, path);
        }

        /// <summary>Reports unknown needs and cycles; when the graph is sound, gives each job its ancestors.</summary>
        private PipelineDefinition CheckGraph(PipelineDefinition pipeline, string path)
        {
            var ids = pipeline.Jobs.Select(j => j.Id).ToHashSet();
            var sound = true;
            foreach (var job in pipeline.Jobs)
            {
                foreach (var (need, position) in job.Needs)
                {
                    if (!ids.Contains(need))
                    {
                        sound = false;
                        Error(position.Line, position.Column, $"{path}.jobs.{job.Id}.needs",
                            $"unknown job '{need}'; {(Suggestions.Closest(need, ids) is { } close ? $"did you mean '{close}'? " : "")}jobs in this pipeline: {string.Join(", ", pipeline.Jobs.Select(j => j.Id))}");
                    }
                    else if (need == job.Id)
                    {
                        sound = false;
                        Error(position.Line, position.Column, $"{path}.jobs.{job.Id}.needs", $"job '{job.Id}' needs itself; remove it from needs");
                    }
                }
            }

            // Depth-first search; a back edge closes a cycle, reported once at the needs entry that closes it.
            var state = new Dictionary<string, int>();
            var stack = new List<string>();
            void Visit(JobDefinition job)
            {
                state[job.Id] = 1;
                stack.Add(job.Id);
                foreach (var (need, position) in job.Needs)
                {
                    if (need == job.Id || pipeline.FindJob(need) is not { } next)
                    {
                        continue;
                    }

                    if (state.GetValueOrDefault(need) == 1)
                    {
                        sound = false;
                        var cycle = stack.Skip(stack.IndexOf(need)).Append(need);
                        Error(position.Line, position.Column, $"{path}.jobs.{job.Id}.needs",
                            $"needs form a cycle: {string.Join(" -> ", cycle)}; remove one of these needs");
                    }
                    else if (state.GetValueOrDefault(need) == 0)
                    {
                        Visit(next);
                    }
                }

                stack.RemoveAt(stack.Count - 1);
                state[job.Id] = 2;
            }

            foreach (var job in pipeline.Jobs)
            {
                if (state.GetValueOrDefault(job.Id) == 0)
                {
                    Visit(job);
                }
            }

            if (!sound)
            {
                return pipeline;
            }

            var ancestors = new Dictionary<string, ImmutableArray<string>>();
            ImmutableArray<string> Of(string id)
            {
                if (ancestors.TryGetValue(id, out var known))
                {
                    return known;
                }

                var job = pipeline.FindJob(id)!;
                var all = job.Needs.SelectMany(n => Of(n.Job).Prepend(n.Job)).Distinct().ToImmutableArray();
                ancestors[id] = all;
                return all;
            }

            return pipeline with { Jobs = [.. pipeline.Jobs.Select(j => j with { Ancestors = Of(j.Id) })] };
        }

        private JobDefinition ParseJob(string id, YamlNode keyNode, YamlMappingNode body, string path, ExpressionScope pipelineScope)
        {
            var matrix = Get(body, "strategy") is { } strategyNode ? ParseStrategy(strategyNode, path + ".strategy", pipelineScope) : null;
            var scope = pipelineScope with
            {
                MatrixKeys = matrix is null ? ImmutableHashSet.Create<string>(StringComparer.OrdinalIgnoreCase) : matrix.Keys,
            };
            var draft = new JobDraft(new JobDefinition(id, At(keyNode)) { Matrix = matrix }, scope);
            ReadKeys(body, path, JobKeys, draft);
            var job = draft.V;
            if (draft.Steps is null)
            {
                if (Get(body, "uses") is null)
                {
                    Error(body, path, "a job needs steps:; add steps: [ { run: ... } ]");
                }

                return job;
            }

            if (Expect<YamlSequenceNode>(draft.Steps, path + ".steps", "a list of steps") is not { } list)
            {
                return job;
            }

            var steps = ImmutableArray.CreateBuilder<StepDefinition>();
            var ids = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            for (var i = 0; i < list.Children.Count; i++)
            {
                var stepPath = $"{path}.steps[{i}]";
                if (Expect<YamlMappingNode>(list.Children[i], stepPath, "a step mapping such as { run: make }") is { } step &&
                    ParseStep(step, stepPath, scope) is { } parsed)
                {
                    if (parsed.Id is { } stepId && !ids.Add(stepId))
                    {
                        Error(Get(step, "id")!, stepPath + ".id", $"step id '{stepId}' is used by an earlier step of this job; ids must be unique in a job");
                    }

                    steps.Add(parsed);
                }
            }

            if (steps.Count == 0 && list.Children.Count == 0)
            {
                Error(draft.Steps, path + ".steps", "a job needs at least one step");
            }

            return job with { Steps = steps.ToImmutable() };
        }

        public bool ParseWorkspace(YamlNode node, string path)
        {
            var value = Scalar(node, path);
            switch (value)
            {
                case null or "shared":
                    return false;
                case "isolated":
                    return true;
                default:
                    Error(node, path, $"expected 'shared' (the base folder, the default) or 'isolated' (a fresh folder per job), got '{value}'");
                    return false;
            }
        }

        public string? StepId(YamlNode node, string path)
        {
            var id = Scalar(node, path);
            if (id is not null && !IdPattern().IsMatch(id))
            {
                Error(node, path, $"'{id}' is not a valid step id; start with a letter or _, then letters, digits, _ or -");
                return null;
            }

            return id;
        }

        private StepDefinition? ParseStep(YamlMappingNode body, string path, ExpressionScope scope)
        {
            var draft = new StepDraft(scope);
            var stepName = Get(body, "name") is YamlScalarNode n ? n.Value : null;
            ReadKeys(body, path, StepKeys, draft);
            if (Get(body, "uses") is { } uses)
            {
                var what = (uses as YamlScalarNode)?.Value ?? "";
                var label = stepName ?? (Get(body, "id") as YamlScalarNode)?.Value;
                var named = label is null ? "this step" : $"step '{label}'";
                Error(uses, path + ".uses",
                    $"{named} uses '{what}': marketplace and local actions are not supported (there is no registry to fetch them from); replace it with run: steps that do the same");
                return null;
            }

            if (Get(body, "with") is { } with)
            {
                Error(with, path + ".with", "with: gives inputs to an action (uses:), which Berth does not run; pass values through env: instead");
            }

            if (draft.Kinds.Count != 1)
            {
                Error(body, path, draft.Kinds.Count == 0
                    ? "a step needs one of run:, test:, build-image:, deploy:, approve:"
                    : $"a step has exactly one of run:, test:, build-image:, deploy:, approve:; this one has {string.Join(" and ", draft.Kinds.Select(k => k.Kind))}");
                return null;
            }

            var (kind, kindNode) = draft.Kinds[0];
            var kindPath = $"{path}.{kind}";
            var shell = draft.Shell is null ? null : Scalar(draft.Shell, path + ".shell");
            if (draft.Shell is not null && kind is not ("run" or "test"))
            {
                Error(draft.Shell, path + ".shell", "shell: applies to run: and test: steps only");
            }

            if (draft.Results is not null && kind != "test")
            {
                Error(draft.Results, path + ".results", "results: applies to test: steps only");
            }

            var position = At(body);
            var name = draft.Name ?? DefaultName(kind, kindNode);
            StepDefinition? step = kind switch
            {
                "run" => ParseCommand(kindNode, kindPath, shell, scope) is { } command ? new RunStep(name, position, command) : null,
                "test" => ParseCommand(kindNode, kindPath, shell, scope) is { } command ? new TestStep(name, position, command, ParseResults(draft.Results, kindNode, path, scope)) : null,
                "build-image" => ParseBuildImage(kindNode, kindPath, scope) is { } build ? new BuildImageStep(name, position, build) : null,
                "deploy" => ParseDeploy(kindNode, kindPath, scope) is { } deploy ? new DeployStep(name, position, deploy) : null,
                "approve" => new ApproveStep(name, position, ApproveMessage(kindNode, kindPath)),
                _ => throw new InvalidOperationException($"step kind {kind} has no reader"),
            };
            return step is null ? null : step with
            {
                Id = draft.Id,
                NameTemplate = draft.NameTemplate,
                Env = draft.Env,
                WorkingDirectory = draft.WorkingDirectory,
                If = draft.If,
                Timeout = draft.Timeout,
                Retry = draft.Retry,
                ContinueOnError = draft.ContinueOnError,
            };
        }

        private string ApproveMessage(YamlNode node, string path)
        {
            var message = node is YamlMappingNode map ? Scalar(Get(map, "message"), path + ".message") : Scalar(node, path);
            return string.IsNullOrEmpty(message) ? "Approve to continue" : message;
        }

        private ImmutableArray<string> ParseResults(YamlNode? node, YamlNode kindNode, string path, ExpressionScope scope)
        {
            var resultNodes = StringNodes(node, path + ".results");
            resultNodes.ForEach(n => TemplateOf(n, path + ".results", scope));
            var results = resultNodes.Select(n => n.Value ?? "").ToImmutableArray();
            if (results.IsEmpty)
            {
                Error(kindNode, path, "a test step needs results: with the TRX or JUnit files it writes, e.g. results: '**/*.trx'");
            }

            return results;
        }

        private static string DefaultName(string kind, YamlNode kindNode)
        {
            var text = kindNode switch
            {
                YamlScalarNode s => s.Value ?? "",
                YamlSequenceNode seq => string.Join(' ', seq.Children.OfType<YamlScalarNode>().Select(c => c.Value)),
                YamlMappingNode map when Get(map, "service") is YamlScalarNode service => service.Value ?? "",
                YamlMappingNode map when (Get(map, "tags") ?? Get(map, "tag")) is YamlScalarNode tag => tag.Value ?? "",
                _ => "",
            };
            var firstLine = text.Split('\n')[0].Trim();
            return kind switch
            {
                "run" => firstLine,
                "approve" => "approve",
                _ => $"{kind} {firstLine}".Trim(),
            };
        }

        /// <summary>
        /// A string is a script for a shell — bash by default, as GitHub's Linux runners; a list is argv, run without a shell.
        /// </summary>
        private CommandDefinition? ParseCommand(YamlNode node, string path, string? shell, ExpressionScope scope)
        {
            if (node is YamlSequenceNode list)
            {
                if (shell is not null)
                {
                    Error(node, path, "with shell:, run: is a script (a string), not a list of arguments");
                    return null;
                }

                return ParseArgvList(list, path, scope) is { } argv ? new CommandDefinition(argv, null, null) : null;
            }

            if (Expect<YamlScalarNode>(node, path, "a command (a script string, or a list of arguments)") is not { } scalar)
            {
                return null;
            }

            if (shell is not null && !ShellCommand.IsKnown(shell))
            {
                Error(node, path, $"unknown shell '{shell}'; use bash, sh, pwsh, python, or a command with {{0}} for the script file (e.g. perl {{0}})");
            }

            if (string.IsNullOrWhiteSpace(scalar.Value))
            {
                Error(node, path, "the command is empty; give the script to run");
                return null;
            }

            return TemplateOf(scalar, path, scope) is { } script ? new CommandDefinition([], shell, script) : null;
        }

        private ImmutableArray<Template>? ParseArgvList(YamlSequenceNode list, string path, ExpressionScope scope)
        {
            var argv = ImmutableArray.CreateBuilder<Template>();
            foreach (var item in list.Children)
            {
                if (Expect<YamlScalarNode>(item, path, "an argument (a string)") is { } arg)
                {
                    argv.Add(TemplateOf(arg, path, scope) ?? Template.Literal(""));
                }
            }

            if (argv.Count == 0)
            {
                Error(list, path, "the command is empty; give the program and its arguments");
                return null;
            }

            return argv.ToImmutable();
        }

        /// <summary>A string split into argv (quotes and backslashes only) or a list: for deploy's command:, which never runs through a shell.</summary>
        private ImmutableArray<Template>? ParseArgv(YamlNode node, string path, ExpressionScope scope)
        {
            if (node is YamlSequenceNode list)
            {
                return ParseArgvList(list, path, scope);
            }

            if (Expect<YamlScalarNode>(node, path, "a command (a string or a list of arguments)") is not { } scalar)
            {
                return null;
            }

            List<(string Word, int Offset)> words;
            try
            {
                words = ArgvSplitter.Split(scalar.Value ?? "");
            }
            catch (FormatException e)
            {
                Error(node, path, e.Message);
                return null;
            }

            if (words.Count == 0)
            {
                Error(node, path, "the command is empty; give the program and its arguments");
                return null;
            }

            var result = ImmutableArray.CreateBuilder<Template>();
            foreach (var (word, offset) in words)
            {
                try
                {
                    var template = Template.Parse(word);
                    ValidateTemplate(template, scalar, path, scope, offset);
                    result.Add(template);
                }
                catch (ExpressionException e)
                {
                    ExpressionError(scalar, path, e, offset);
                }
            }

            return result.ToImmutable();
        }

        private static readonly KeyTable<Reader, Box<BuildImageDefinition>> BuildImageKeys = new("build-image")
        {
            ["context"] = (r, v, p, b) => b.V = b.V with { Context = r.TemplateOf(v, p, r._scope) ?? Template.Literal(".") },
            ["dockerfile"] = (r, v, p, b) => b.V = b.V with { Dockerfile = r.TemplateOf(v, p, r._scope) },
            ["tags"] = (r, v, p, b) => b.V = b.V with { Tags = b.V.Tags.AddRange(r.StringNodes(v, p).Select(t => r.TemplateOf(t, p, r._scope)).OfType<Template>()) },
            ["tag"] = (r, v, p, b) => b.V = b.V with { Tags = b.V.Tags.AddRange(r.StringNodes(v, p).Select(t => r.TemplateOf(t, p, r._scope)).OfType<Template>()) },
            ["build-args"] = (r, v, p, b) => b.V = b.V with { BuildArgs = r.EnvMap(v, p, r._scope) },
        };

        private ExpressionScope _scope = new();

        private BuildImageDefinition? ParseBuildImage(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with context: and tags:") is not { } map)
            {
                return null;
            }

            _scope = scope;
            var build = new Box<BuildImageDefinition>(new BuildImageDefinition(Template.Literal("."), null, [], []));
            ReadKeys(map, path, BuildImageKeys, build);
            if (build.V.Tags.IsEmpty)
            {
                Error(map, path, "build-image needs tags: with at least one image name, e.g. tags: shop/api:dev");
            }

            return build.V;
        }

        private static readonly KeyTable<Reader, Box<DeployDefinition>> DeployKeys = new("deploy")
        {
            ["service"] = (r, v, p, b) => b.V = b.V with { Service = r.TemplateOf(v, p, r._scope) ?? Template.Literal("") },
            ["image"] = (r, v, p, b) => b.V = b.V with { Image = r.TemplateOf(v, p, r._scope) },
            ["command"] = (r, v, p, b) => b.V = b.V with { Command = r.ParseArgv(v, p, r._scope) },
            ["env"] = (r, v, p, b) => b.V = b.V with { Env = r.EnvMap(v, p, r._scope) },
            ["timeout"] = (r, v, p, b) => b.V = b.V with { Timeout = r.Duration(v, p) },
        };

        private DeployDefinition? ParseDeploy(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with service: and image:, command: or env:") is not { } map)
            {
                return null;
            }

            _scope = scope;
            var deploy = new Box<DeployDefinition>(new DeployDefinition(Template.Literal(""), null, null, [], null));
            ReadKeys(map, path, DeployKeys, deploy);
            if (Get(map, "service") is null)
            {
                Error(map, path, "deploy needs service: naming the service to update");
            }

            if (deploy.V.Image is null && deploy.V.Command is null && deploy.V.Env.IsEmpty)
            {
                Error(map, path, "deploy changes nothing; give image:, command: or env:");
            }

            return deploy.V;
        }

        public RetryPolicy ParseRetry(YamlNode node, string path)
        {
            if (node is YamlScalarNode)
            {
                return new RetryPolicy(PositiveInt(node, path) ?? 1, [], TimeSpan.Zero);
            }

            if (Expect<YamlMappingNode>(node, path, "a number of attempts or { attempts, on-exit-codes, delay }") is not { } map)
            {
                return RetryPolicy.None;
            }

            var retry = new Box<RetryPolicy>(new RetryPolicy(2, [], TimeSpan.Zero));
            ReadKeys(map, path, RetryKeys, retry);
            return retry.V;
        }

        private static readonly KeyTable<Reader, Box<RetryPolicy>> RetryKeys = new("retry")
        {
            ["attempts"] = (r, v, p, b) => b.V = b.V with { Attempts = r.PositiveInt(v, p) ?? 2 },
            ["on-exit-codes"] = (r, v, p, b) => b.V = b.V with { OnExitCodes = r.ExitCodes(v, p) },
            ["delay"] = (r, v, p, b) => b.V = b.V with { Delay = r.Duration(v, p) ?? TimeSpan.Zero },
        };

        private ImmutableArray<int> ExitCodes(YamlNode node, string path)
        {
            var codes = ImmutableArray.CreateBuilder<int>();
            foreach (var (text, codeNode) in StringList(node, path, allowScalar: true))
            {
                if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) && code is >= 0 and <= 255)
                {
                    codes.Add(code);
                }
                else
                {
                    Error(codeNode, path, $"'{text}' is not an exit code (0 to 255)");
                }
            }

            return codes.ToImmutable();
        }

        public CacheDefinition? ParseCache(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with key: and paths:") is not { } map)
            {
                return null;
            }

            _scope = scope;
            var cache = new Box<CacheDefinition>(new CacheDefinition(Template.Literal(""), [], []));
            ReadKeys(map, path, CacheKeys, cache);
            if (Get(map, "key") is null)
            {
                Error(map, path, "cache needs key:, e.g. key: nuget-${{ hashFiles('**/packages.lock.json') }}");
            }

            if (cache.V.Paths.IsEmpty)
            {
                Error(map, path, "cache needs paths: with the folders to save and restore");
            }

            return cache.V;
        }

        private static readonly KeyTable<Reader, Box<CacheDefinition>> CacheKeys = new("cache")
        {
            ["key"] = (r, v, p, b) => b.V = b.V with { Key = r.TemplateOf(v, p, r._scope) ?? Template.Literal("") },
            ["restore-keys"] = (r, v, p, b) => b.V = b.V with { RestoreKeys = [.. r.StringNodes(v, p).Select(n => r.TemplateOf(n, p, r._scope)).OfType<Template>()] },
            ["paths"] = (r, v, p, b) => b.V = b.V with { Paths = [.. r.StringList(v, p, allowScalar: true).Select(x => x.Value)] },
            ["path"] = (r, v, p, b) => b.V = b.V with { Paths = [.. r.StringList(v, p, allowScalar: true).Select(x => x.Value)] },
        };

        private MatrixDefinition? ParseStrategy(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with matrix:, fail-fast: or max-parallel:") is not { } map)
            {
                return null;
            }

            var strategy = new Box<MatrixDefinition>(new MatrixDefinition());
            _scope = scope;
            ReadKeys(map, path, StrategyKeys, strategy);
            return strategy.V;
        }

        private static readonly KeyTable<Reader, Box<MatrixDefinition>> StrategyKeys = new("strategy")
        {
            ["matrix"] = (r, v, p, b) => b.V = r.ParseMatrix(v, p, b.V),
            ["fail-fast"] = (r, v, p, b) => b.V = b.V with { FailFast = r.FlagOf(v, p, r._scope) ?? new Flag(true) },
            ["max-parallel"] = (r, v, p, b) => b.V = b.V with { MaxParallel = r.PositiveInt(v, p) },
        };

        private MatrixDefinition ParseMatrix(YamlNode node, string path, MatrixDefinition strategy)
        {
            if (node is YamlScalarNode scalar && WholeExpression(scalar, path, _scope) is { } dynamic)
            {
                return strategy with { Dynamic = dynamic };
            }

            if (Expect<YamlMappingNode>(node, path, "a mapping of axes to value lists, or ${{ fromJSON(...) }}") is not { } matrix)
            {
                return strategy;
            }

            var axes = ImmutableArray.CreateBuilder<(string, ImmutableArray<string>)>();
            var include = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
            var exclude = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
            foreach (var (keyNode, value) in matrix.Children)
            {
                var key = ((YamlScalarNode)keyNode).Value ?? "";
                if (key is "include" or "exclude")
                {
                    var combos = Combinations(value, $"{path}.{key}");
                    if (key == "include")
                    {
                        include = combos;
                    }
                    else
                    {
                        exclude = combos;
                    }

                    continue;
                }

                var values = StringList(value, $"{path}.{key}").Select(v => v.Value).ToImmutableArray();
                if (values.IsEmpty)
                {
                    Error(value, $"{path}.{key}", "a matrix axis needs at least one value");
                }

                axes.Add((key, values));
            }

            var keys = axes.Select(a => a.Item1).ToHashSet();
            foreach (var combo in exclude)
            {
                foreach (var key in combo.Keys.Where(k => !keys.Contains(k)))
                {
                    Error(matrix, $"{path}.exclude", $"exclude names '{key}', which is not a matrix axis ({string.Join(", ", keys)})");
                }
            }

            if (axes.Count == 0 && include.IsEmpty)
            {
                Error(matrix, path, "the matrix is empty; add an axis such as config: [Debug, Release]");
            }

            return strategy with { Axes = axes.ToImmutable(), Include = include, Exclude = exclude };
        }

        private ImmutableArray<ImmutableDictionary<string, string>> Combinations(YamlNode node, string path)
        {
            if (Expect<YamlSequenceNode>(node, path, "a list of mappings") is not { } list)
            {
                return [];
            }

            var result = ImmutableArray.CreateBuilder<ImmutableDictionary<string, string>>();
            foreach (var item in list.Children)
            {
                if (Expect<YamlMappingNode>(item, path, "a mapping of matrix keys to values") is { } map)
                {
                    result.Add(map.Children.ToImmutableDictionary(
                        kv => ((YamlScalarNode)kv.Key).Value ?? "",
                        kv => Scalar(kv.Value, path) ?? ""));
                }
            }

            return result.ToImmutable();
        }

        public PipelineTriggers ParseTriggers(YamlNode node, string path, PipelineDraft draft)
        {
            // GitHub's on: may be an event name or a list of them; Berth runs by hand, on watch and on schedule.
            if (node is YamlScalarNode or YamlSequenceNode)
            {
                foreach (var (eventName, eventNode) in StringList(node, path, allowScalar: true))
                {
                    TriggerEvent(eventName, eventNode, path);
                }

                return new PipelineTriggers();
            }

            if (Expect<YamlMappingNode>(node, path, "a mapping with manual:, watch: or schedule:") is not { } map)
            {
                return new PipelineTriggers();
            }

            var watch = ImmutableArray<string>.Empty;
            var schedules = ImmutableArray.CreateBuilder<string>();
            foreach (var (k, value) in map.Children)
            {
                var key = (k as YamlScalarNode)?.Value ?? "";
                var p = $"{path}.{key}";
                switch (key)
                {
                    case "manual":
                        _ = FlagOf(value, p, new ExpressionScope());
                        break;
                    case "watch":
                        watch = [.. StringList(value is YamlMappingNode watchMap ? Get(watchMap, "paths") : value, p, allowScalar: true).Select(w => w.Value)];
                        break;
                    case "schedule":
                        Schedules(value, p, schedules);
                        break;
                    case "workflow_dispatch":
                        if (value is YamlMappingNode dispatch && Get(dispatch, "inputs") is { } inputs)
                        {
                            draft.V = draft.V with { Inputs = draft.V.Inputs.AddRange(ParseInputs(inputs, p + ".inputs")) };
                        }

                        break;
                    default:
                        TriggerEvent(key, k, path);
                        break;
                }
            }

            return new PipelineTriggers { WatchPaths = watch, Schedules = schedules.ToImmutable() };
        }

        private void TriggerEvent(string name, YamlNode node, string path)
        {
            if (name is "push" or "pull_request" or "pull_request_target" or "release" or "workflow_run" or "repository_dispatch" or "merge_group")
            {
                Warning(node, path, $"on: {name} is ignored: there is no GitHub event on this machine; the pipeline runs with berth pipeline run, on watch: and on schedule:");
            }
            else if (name is not ("workflow_dispatch" or "manual"))
            {
                Error(node, path, KeyTable<Reader, object>.UnknownKeyMessage(name, ["manual", "watch", "schedule", "workflow_dispatch", "push", "pull_request"], "on"));
            }
        }

        private void Schedules(YamlNode node, string path, ImmutableArray<string>.Builder schedules)
        {
            foreach (var item in node is YamlSequenceNode seq ? seq.Children : [node])
            {
                var cronNode = item is YamlMappingNode cronMap ? Get(cronMap, "cron") ?? item : item;
                var cron = Scalar(cronNode, path);
                if (cron is null)
                {
                    continue;
                }

                try
                {
                    Cronos.CronExpression.Parse(cron);
                    schedules.Add(cron);
                }
                catch (Cronos.CronFormatException e)
                {
                    Error(cronNode, path, $"'{cron}' is not a cron expression ({e.Message}); use 5 fields, e.g. '0 3 * * *'");
                }
            }
        }

        private static readonly KeyTable<Reader, Box<InputDefinition>> InputKeys = new("an input")
        {
            ["description"] = (r, v, p, b) => b.V = b.V with { Description = r.Scalar(v, p) ?? "" },
            ["default"] = (r, v, p, b) => b.V = b.V with { Default = r.Scalar(v, p) },
            ["required"] = (r, v, p, b) => b.V = b.V with { Required = r.Bool(v, p) ?? false },
            ["type"] = (r, v, p, b) => b.V = b.V with { Type = r.InputType(v, p) },
            ["options"] = (r, v, p, b) => r.StringList(v, p),
        };

        private string InputType(YamlNode node, string path)
        {
            var type = Scalar(node, path) ?? "string";
            if (type is not ("string" or "boolean" or "number" or "choice" or "environment"))
            {
                Error(node, path, $"unknown input type '{type}'; use string, boolean, number or choice");
            }

            return type;
        }

        public IEnumerable<InputDefinition> ParseInputs(YamlNode node, string path)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping of input names to { description, default, required, type }") is not { } map)
            {
                yield break;
            }

            foreach (var (k, v) in map.Children)
            {
                var name = (k as YamlScalarNode)?.Value ?? "";
                var input = new Box<InputDefinition>(new InputDefinition(name, null, false, "string", ""));
                if (v is YamlMappingNode body)
                {
                    ReadKeys(body, $"{path}.{name}", InputKeys, input);
                }
                else if (!(v is YamlScalarNode s && string.IsNullOrEmpty(s.Value)))
                {
                    Error(v, $"{path}.{name}", "expected a mapping with description:, default:, required:, type:");
                }

                yield return input.V;
            }
        }

        private static readonly KeyTable<Reader, Box<RunDefaults>> RunDefaultKeys = new("defaults.run")
        {
            ["shell"] = (r, v, p, b) => b.V = b.V with { Shell = r.ShellName(v, p) },
            ["working-directory"] = (r, v, p, b) => b.V = b.V with { WorkingDirectory = r.Scalar(v, p) },
        };

        private string? ShellName(YamlNode node, string path)
        {
            var shell = Scalar(node, path);
            if (shell is not null && !ShellCommand.IsKnown(shell))
            {
                Error(node, path, $"unknown shell '{shell}'; use bash, sh, pwsh, python, or a command with {{0}} for the script file (e.g. perl {{0}})");
            }

            return shell;
        }

        public RunDefaults ParseDefaults(YamlNode node, string path)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with run: { shell, working-directory }") is not { } map)
            {
                return RunDefaults.None;
            }

            var defaults = new Box<RunDefaults>(RunDefaults.None);
            foreach (var (k, v) in map.Children)
            {
                var key = (k as YamlScalarNode)?.Value ?? "";
                if (key == "run" && Expect<YamlMappingNode>(v, path + ".run", "a mapping with shell: and working-directory:") is { } run)
                {
                    ReadKeys(run, path + ".run", RunDefaultKeys, defaults);
                }
                else if (key != "run")
                {
                    Error(k, $"{path}.{key}", KeyTable<Reader, object>.UnknownKeyMessage(key, ["run"], "defaults"));
                }
            }

            return defaults.V;
        }

        public ConcurrencyDefinition? ParseConcurrency(YamlNode node, string path, ExpressionScope scope)
        {
            if (node is YamlScalarNode)
            {
                return TemplateOf(node, path, scope) is { } group ? new ConcurrencyDefinition(group, Flag.False) : null;
            }

            if (Expect<YamlMappingNode>(node, path, "a group name or { group, cancel-in-progress }") is not { } map)
            {
                return null;
            }

            _scope = scope;
            var concurrency = new Box<ConcurrencyDefinition>(new ConcurrencyDefinition(Template.Literal(""), Flag.False));
            ReadKeys(map, path, ConcurrencyKeys, concurrency);
            if (Get(map, "group") is null)
            {
                Error(map, path, "concurrency needs group:, e.g. group: deploy-${{ github.ref }}");
                return null;
            }

            return concurrency.V;
        }

        private static readonly KeyTable<Reader, Box<ConcurrencyDefinition>> ConcurrencyKeys = new("concurrency")
        {
            ["group"] = (r, v, p, b) => b.V = b.V with { Group = r.TemplateOf(v, p, r._scope) ?? Template.Literal("") },
            ["cancel-in-progress"] = (r, v, p, b) => b.V = b.V with { CancelInProgress = r.FlagOf(v, p, r._scope) ?? Flag.False },
        };

        public TimeSpan? Duration(YamlNode node, string path)
        {
            var text = Scalar(node, path);
            if (text is null)
            {
                return null;
            }

            if (!Durations.TryParse(text, out var value, out var error) || value <= TimeSpan.Zero)
            {
                Error(node, path, error ?? $"must be positive, got '{text}'");
                return null;
            }

            return value;
        }

        /// <summary><c>timeout-minutes</c>: a positive number, or an expression evaluated when the job or step starts.</summary>
        public TimeoutValue TimeoutMinutes(YamlNode node, string path, ExpressionScope scope)
        {
            if (node is YamlScalarNode scalar && (scalar.Value ?? "").Contains("${{", StringComparison.Ordinal))
            {
                return WholeExpression(scalar, path, scope) is { } expr ? new TimeoutValue(null, expr) : TimeoutValue.None;
            }

            var text = Scalar(node, path);
            if (text is null)
            {
                return TimeoutValue.None;
            }

            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var minutes) || minutes <= 0)
            {
                Error(node, path, $"expected a positive number of minutes, got '{text}'");
                return TimeoutValue.None;
            }

            return new TimeoutValue(TimeSpan.FromMinutes(minutes));
        }

        /// <summary>true/false, or a whole <c>${{ expression }}</c> evaluated at run time.</summary>
        public Flag? FlagOf(YamlNode node, string path, ExpressionScope scope)
        {
            if (node is YamlScalarNode scalar && (scalar.Value ?? "").Contains("${{", StringComparison.Ordinal))
            {
                return WholeExpression(scalar, path, scope) is { } expr ? new Flag(false, expr) : null;
            }

            return Bool(node, path) is { } value ? new Flag(value) : null;
        }

        /// <summary>A value that is one <c>${{ expression }}</c> and nothing else.</summary>
        private Expr? WholeExpression(YamlScalarNode scalar, string path, ExpressionScope scope)
        {
            var template = TemplateOf(scalar, path, scope);
            if (template is null)
            {
                return null;
            }

            if (template.Parts.Length != 1 || template.Parts[0].Expression is not { } expr)
            {
                Error(scalar, path, $"expected true/false, a number or a single ${{{{ expression }}}}, got '{scalar.Value}'");
                return null;
            }

            return expr;
        }

        public int? PositiveInt(YamlNode? node, string path)
        {
            var text = Scalar(node, path);
            if (text is null)
            {
                return null;
            }

            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 1)
            {
                Error(node!, path, $"expected a whole number of 1 or more, got '{text}'");
                return null;
            }

            return value;
        }

        public bool? Bool(YamlNode? node, string path)
        {
            var text = Scalar(node, path);
            switch (text)
            {
                case null:
                    return null;
                case "true":
                    return true;
                case "false":
                    return false;
                default:
                    Error(node!, path, $"expected true or false, got '{text}'");
                    return null;
            }
        }

        public string? Scalar(YamlNode? node, string path)
        {
            if (node is null)
            {
                return null;
            }

            return Expect<YamlScalarNode>(node, path, "a single value")?.Value;
        }

        public List<YamlScalarNode> StringNodes(YamlNode? node, string path)
        {
            switch (node)
            {
                case null:
                    return [];
                case YamlScalarNode scalar:
                    return [scalar];
                case YamlSequenceNode list:
                    return list.Children.Select(c => Expect<YamlScalarNode>(c, path, "a single value")).OfType<YamlScalarNode>().ToList();
                default:
                    Error(node, path, "expected a value or a list of values, got a mapping");
                    return [];
            }
        }

        public List<(string Value, YamlNode Node)> StringList(YamlNode? node, string path, bool allowScalar = false)
        {
            if (node is YamlScalarNode && !allowScalar)
            {
                Error(node, path, "expected a list, e.g. [a, b]");
                return [];
            }

            return StringNodes(node, path).Select(n => (n.Value ?? "", (YamlNode)n)).ToList();
        }

        public ImmutableArray<EnvEntry> EnvMap(YamlNode? node, string path, ExpressionScope scope)
        {
            if (node is null || Expect<YamlMappingNode>(node, path, "a mapping of names to values") is not { } map)
            {
                return [];
            }

            var result = ImmutableArray.CreateBuilder<EnvEntry>();
            foreach (var (key, value) in map.Children)
            {
                var name = ((YamlScalarNode)key).Value ?? "";
                if (TemplateOf(value, $"{path}.{name}", scope) is { } template)
                {
                    result.Add(new EnvEntry(name, template));
                }
            }

            return result.ToImmutable();
        }

        /// <summary>The raw text of a value whose expressions are checked now and rendered later (working-directory).</summary>
        public string? TemplateText(YamlNode node, string path, ExpressionScope scope) =>
            TemplateOf(node, path, scope) is null ? null : (node as YamlScalarNode)?.Value;

        public Template? TemplateOf(YamlNode? node, string path, ExpressionScope scope)
        {
            if (node is null || Expect<YamlScalarNode>(node, path, "a single value") is not { } scalar)
            {
                return null;
            }

            try
            {
                var template = Template.Parse(scalar.Value ?? "");
                ValidateTemplate(template, scalar, path, scope, 0);
                return template;
            }
            catch (ExpressionException e)
            {
                ExpressionError(scalar, path, e, 0);
                return null;
            }
        }

        private void ValidateTemplate(Template template, YamlScalarNode scalar, string path, ExpressionScope scope, int baseOffset)
        {
            foreach (var (expression, offset) in template.Expressions)
            {
                foreach (var error in ExpressionEvaluator.Validate(expression, scope))
                {
                    ExpressionError(scalar, path, new ExpressionException(error.Message, offset + error.Offset), baseOffset);
                }
            }
        }

        public Expr? Condition(YamlNode? node, string path, ExpressionScope scope)
        {
            if (node is null || Expect<YamlScalarNode>(node, path, "a condition") is not { } scalar)
            {
                return null;
            }

            var text = scalar.Value ?? "";
            var trimmed = text.Trim();
            var offset = 0;
            if (trimmed.StartsWith("${{", StringComparison.Ordinal) && trimmed.EndsWith("}}", StringComparison.Ordinal) &&
                ExpressionParser.Lexer.FindClose(text, text.IndexOf("${{", StringComparison.Ordinal) + 3) == text.LastIndexOf("}}", StringComparison.Ordinal))
            {
                offset = text.IndexOf("${{", StringComparison.Ordinal) + 3;
                text = text[offset..text.LastIndexOf("}}", StringComparison.Ordinal)];
            }

            try
            {
                var expr = ExpressionParser.Parse(text);
                var errors = ExpressionEvaluator.Validate(expr, scope with { StatusFunctions = true });
                foreach (var error in errors)
                {
                    ExpressionError(scalar, path, error, offset);
                }

                return errors.Count == 0 ? expr : null;
            }
            catch (ExpressionException e)
            {
                ExpressionError(scalar, path, e, offset);
                return null;
            }
        }

        /// <summary>Reports at the character of the expression that is wrong, for scalars on one line.</summary>
        private void ExpressionError(YamlScalarNode scalar, string path, ExpressionException error, int baseOffset)
        {
            var offset = baseOffset + error.Offset;
            var text = scalar.Value ?? "";
            var line = scalar.Start.Line;
            var column = scalar.Start.Column;
            if (scalar.Style is ScalarStyle.Literal or ScalarStyle.Folded)
            {
                var before = text[..Math.Min(offset, text.Length)];
                line += 1 + before.Count(c => c == '\n');
                column = 1 + offset - (before.LastIndexOf('\n') + 1);
            }
            else if (scalar.Start.Line == scalar.End.Line)
            {
                column += offset + (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted ? 1 : 0);
            }

            Error(line, column, path, $"bad expression: {error.Message}");
        }
    }
}
