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
/// Reads <c>pipelines:</c> from a spec or a pipelines file with YamlDotNet's representation model, so every
/// problem is reported with file:line:column — all of them at once, before anything runs.
/// </summary>
public static partial class PipelineParser
{
    private static readonly string[] PipelineKeys = ["on", "env", "secrets", "max-parallel", "timeout", "timeout-minutes", "jobs"];
    private static readonly string[] JobKeys =
        ["name", "needs", "if", "env", "working-directory", "timeout", "timeout-minutes", "continue-on-error", "strategy", "artifacts", "cache", "workspace", "steps"];
    private static readonly string[] StepKeys =
        ["name", "run", "shell", "test", "results", "build-image", "deploy", "approve", "env", "working-directory", "if", "timeout", "timeout-minutes", "retry", "continue-on-error"];
    private static readonly string[] StepKinds = ["run", "test", "build-image", "deploy", "approve"];

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

    private sealed class Reader(string file, string? baseDirectory = null)
    {
        private readonly string _file = file;
        private readonly string _baseDirectory = baseDirectory ?? Path.GetDirectoryName(Path.GetFullPath(file)) ?? Environment.CurrentDirectory;

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

        public List<Diagnostic> Diagnostics { get; } = [];

        public void Error(long line, long column, string path, string message) =>
            Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, _file, (int)line, (int)column, path, message));

        public void Error(YamlNode node, string path, string message) => Error(node.Start.Line, node.Start.Column, path, message);

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

        private void CheckKeys(YamlMappingNode map, string path, string[] known)
        {
            foreach (var key in map.Children.Keys)
            {
                var name = (key as YamlScalarNode)?.Value ?? "";
                if (!known.Contains(name))
                {
                    Error(key, path, $"unknown key '{name}'; known keys: {string.Join(", ", known)}");
                }
            }
        }

        public PipelineDefinition ParsePipeline(string name, YamlNode keyNode, YamlMappingNode body)
        {
            var path = $"pipelines.{name}";
            CheckKeys(body, path, PipelineKeys);
            var secrets = StringList(Get(body, "secrets"), path + ".secrets");
            foreach (var (secret, node) in secrets)
            {
                if (!IdPattern().IsMatch(secret))
                {
                    Error(node, path + ".secrets", $"'{secret}' is not a valid secret name (letters, digits, _ and -)");
                }
            }

            var secretNames = secrets.Select(s => s.Value).ToImmutableHashSet();
            var pipelineScope = new ExpressionScope { SecretNames = secretNames };
            var pipeline = new PipelineDefinition(name, At(keyNode))
            {
                BaseDirectory = _baseDirectory,
                On = ParseTriggers(Get(body, "on"), path + ".on"),
                Env = EnvMap(Get(body, "env"), path + ".env", pipelineScope),
                Secrets = [.. secrets.Select(s => s.Value)],
                MaxParallel = PositiveInt(Get(body, "max-parallel"), path + ".max-parallel") ?? PipelineDefaults.MaxParallel,
                Timeout = Timeout(body, path),
            };

            var jobsNode = Get(body, "jobs");
            if (jobsNode is null)
            {
                Error(body, path, "a pipeline needs jobs:; add jobs: { build: { steps: [ { run: ... } ] } }");
                return pipeline;
            }

            if (Expect<YamlMappingNode>(jobsNode, path + ".jobs", "a mapping of job ids to jobs") is not { } jobsMap)
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
                    jobs.Add(ParseJob(id, key, job, $"{path}.jobs.{id}", secretNames));
                }
            }

            pipeline = pipeline with { Jobs = jobs.ToImmutable() };
            CheckGraph(pipeline, path);
            return pipeline;
        }

        private void CheckGraph(PipelineDefinition pipeline, string path)
        {
            var ids = pipeline.Jobs.Select(j => j.Id).ToHashSet();
            foreach (var job in pipeline.Jobs)
            {
                foreach (var (need, position) in job.Needs)
                {
                    if (!ids.Contains(need))
                    {
                        Error(position.Line, position.Column, $"{path}.jobs.{job.Id}.needs",
                            $"unknown job '{need}'; jobs in this pipeline: {string.Join(", ", pipeline.Jobs.Select(j => j.Id))}");
                    }
                    else if (need == job.Id)
                    {
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
        }

        private JobDefinition ParseJob(string id, YamlNode keyNode, YamlMappingNode body, string path, ImmutableHashSet<string> secrets)
        {
            CheckKeys(body, path, JobKeys);
            var matrix = ParseStrategy(Get(body, "strategy"), path + ".strategy");
            var scope = new ExpressionScope { SecretNames = secrets, MatrixKeys = matrix?.Keys ?? [] };
            var job = new JobDefinition(id, At(keyNode))
            {
                DisplayName = Scalar(Get(body, "name"), path + ".name"),
                Needs = [.. StringList(Get(body, "needs"), path + ".needs", allowScalar: true).Select(n => (n.Value, At(n.Node)))],
                If = Condition(Get(body, "if"), path + ".if", scope),
                Env = EnvMap(Get(body, "env"), path + ".env", scope),
                WorkingDirectory = Scalar(Get(body, "working-directory"), path + ".working-directory"),
                Timeout = Timeout(body, path),
                ContinueOnError = Bool(Get(body, "continue-on-error"), path + ".continue-on-error") ?? false,
                Matrix = matrix,
                Artifacts = [.. StringList(Get(body, "artifacts"), path + ".artifacts", allowScalar: true).Select(a => a.Value)],
                Cache = ParseCache(Get(body, "cache"), path + ".cache", scope),
                IsolatedWorkspace = ParseWorkspace(Get(body, "workspace"), path + ".workspace"),
            };

            var stepsNode = Get(body, "steps");
            if (stepsNode is null)
            {
                Error(body, path, "a job needs steps:; add steps: [ { run: ... } ]");
                return job;
            }

            if (Expect<YamlSequenceNode>(stepsNode, path + ".steps", "a list of steps") is not { } list)
            {
                return job;
            }

            var steps = ImmutableArray.CreateBuilder<StepDefinition>();
            for (var i = 0; i < list.Children.Count; i++)
            {
                var stepPath = $"{path}.steps[{i}]";
                if (Expect<YamlMappingNode>(list.Children[i], stepPath, "a step mapping such as { run: make }") is { } step &&
                    ParseStep(step, stepPath, scope) is { } parsed)
                {
                    steps.Add(parsed);
                }
            }

            if (steps.Count == 0 && list.Children.Count == 0)
            {
                Error(stepsNode, path + ".steps", "a job needs at least one step");
            }

            return job with { Steps = steps.ToImmutable() };
        }

        private bool ParseWorkspace(YamlNode? node, string path)
        {
            var value = Scalar(node, path);
            switch (value)
            {
                case null or "shared":
                    return false;
                case "isolated":
                    return true;
                default:
                    Error(node!, path, $"expected 'shared' (the base folder, the default) or 'isolated' (a fresh folder per job), got '{value}'");
                    return false;
            }
        }

        private StepDefinition? ParseStep(YamlMappingNode body, string path, ExpressionScope scope)
        {
            CheckKeys(body, path, StepKeys);
            var kinds = StepKinds.Where(k => Get(body, k) is not null).ToList();
            if (kinds.Count != 1)
            {
                Error(body, path, kinds.Count == 0
                    ? "a step needs one of run:, test:, build-image:, deploy:, approve:"
                    : $"a step has exactly one of run:, test:, build-image:, deploy:, approve:; this one has {string.Join(" and ", kinds)}");
                return null;
            }

            var kindName = kinds[0];
            var kindNode = Get(body, kindName)!;
            var shell = Scalar(Get(body, "shell"), path + ".shell");
            var kind = kindName switch
            {
                "run" => StepKind.Run,
                "test" => StepKind.Test,
                "build-image" => StepKind.BuildImage,
                "deploy" => StepKind.Deploy,
                _ => StepKind.Approve,
            };

            if (shell is not null && kind is not (StepKind.Run or StepKind.Test))
            {
                Error(Get(body, "shell")!, path + ".shell", "shell: applies to run: and test: steps only");
            }

            if (Get(body, "results") is { } resultsNode && kind != StepKind.Test)
            {
                Error(resultsNode, path + ".results", "results: applies to test: steps only");
            }

            var step = new StepDefinition(Scalar(Get(body, "name"), path + ".name") ?? "", kind, At(body))
            {
                Env = EnvMap(Get(body, "env"), path + ".env", scope),
                WorkingDirectory = Scalar(Get(body, "working-directory"), path + ".working-directory"),
                If = Condition(Get(body, "if"), path + ".if", scope),
                Timeout = Timeout(body, path),
                Retry = ParseRetry(Get(body, "retry"), path + ".retry"),
                ContinueOnError = Bool(Get(body, "continue-on-error"), path + ".continue-on-error") ?? false,
            };

            switch (kind)
            {
                case StepKind.Run or StepKind.Test:
                    step = step with { Command = ParseCommand(kindNode, $"{path}.{kindName}", shell, scope) };
                    if (kind == StepKind.Test)
                    {
                        var resultNodes = StringNodes(Get(body, "results"), path + ".results");
                        resultNodes.ForEach(n => TemplateOf(n, path + ".results", scope));
                        var results = resultNodes.Select(n => n.Value ?? "").ToImmutableArray();
                        if (results.IsEmpty)
                        {
                            Error(kindNode, path, "a test step needs results: with the TRX or JUnit files it writes, e.g. results: '**/*.trx'");
                        }

                        step = step with { Results = results };
                    }

                    break;
                case StepKind.BuildImage:
                    step = step with { BuildImage = ParseBuildImage(kindNode, path + ".build-image", scope) };
                    break;
                case StepKind.Deploy:
                    step = step with { Deploy = ParseDeploy(kindNode, path + ".deploy", scope) };
                    break;
                case StepKind.Approve:
                    var message = kindNode is YamlMappingNode approveMap ? Scalar(Get(approveMap, "message"), path + ".approve.message") : Scalar(kindNode, path + ".approve");
                    step = step with { ApproveMessage = string.IsNullOrEmpty(message) ? "Approve to continue" : message };
                    break;
            }

            if (step.Name.Length == 0)
            {
                step = step with { Name = DefaultName(step, kindNode) };
            }

            return step;
        }

        private static string DefaultName(StepDefinition step, YamlNode kindNode)
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
            var prefix = step.Kind switch
            {
                StepKind.Run => "",
                StepKind.Test => "test ",
                StepKind.BuildImage => "build-image ",
                StepKind.Deploy => "deploy ",
                _ => "approve",
            };
            return step.Kind == StepKind.Approve ? prefix : (prefix + firstLine).Trim();
        }

        private CommandDefinition? ParseCommand(YamlNode node, string path, string? shell, ExpressionScope scope)
        {
            if (node is YamlSequenceNode list)
            {
                if (shell is not null)
                {
                    Error(node, path, "with shell:, run: is a script (a string), not a list of arguments");
                    return null;
                }

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
                    Error(node, path, "the command is empty; give the program and its arguments");
                }

                return new CommandDefinition(argv.ToImmutable(), null, null);
            }

            if (Expect<YamlScalarNode>(node, path, "a command (a string or a list of arguments)") is not { } scalar)
            {
                return null;
            }

            var text = scalar.Value ?? "";
            if (shell is not null)
            {
                if (shell is not ("bash" or "sh" or "pwsh" or "python" or "python3"))
                {
                    Error(node, path, $"unknown shell '{shell}'; use bash, sh, pwsh or python");
                }

                return new CommandDefinition([], shell, TemplateOf(scalar, path, scope));
            }

            if (text.Trim().Contains('\n'))
            {
                Error(node, path, "run: has several lines but no shell; add shell: bash to run it as a script, or write one command");
                return null;
            }

            List<(string Word, int Offset)> words;
            try
            {
                words = ArgvSplitter.Split(text);
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

            return new CommandDefinition(result.ToImmutable(), null, null);
        }

        private BuildImageDefinition? ParseBuildImage(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with context: and tags:") is not { } map)
            {
                return null;
            }

            CheckKeys(map, path, ["context", "dockerfile", "tags", "tag", "build-args"]);
            var tags = StringNodes(Get(map, "tags") ?? Get(map, "tag"), path + ".tags")
                .Select(t => TemplateOf(t, path + ".tags", scope)).OfType<Template>().ToImmutableArray();
            if (tags.IsEmpty)
            {
                Error(map, path, "build-image needs tags: with at least one image name, e.g. tags: shop/api:dev");
            }

            return new BuildImageDefinition(
                TemplateOf(Get(map, "context"), path + ".context", scope) ?? Template.Literal("."),
                TemplateOf(Get(map, "dockerfile"), path + ".dockerfile", scope),
                tags,
                EnvMap(Get(map, "build-args"), path + ".build-args", scope));
        }

        private DeployDefinition? ParseDeploy(YamlNode node, string path, ExpressionScope scope)
        {
            if (Expect<YamlMappingNode>(node, path, "a mapping with service: and image:, command: or env:") is not { } map)
            {
                return null;
            }

            CheckKeys(map, path, ["service", "image", "command", "env", "timeout"]);
            var service = TemplateOf(Get(map, "service"), path + ".service", scope);
            if (service is null)
            {
                Error(map, path, "deploy needs service: naming the service to update");
            }

            ImmutableArray<Template>? command = null;
            if (Get(map, "command") is { } commandNode)
            {
                var parsed = ParseCommand(commandNode, path + ".command", null, scope);
                command = parsed?.Argv;
            }

            var image = TemplateOf(Get(map, "image"), path + ".image", scope);
            var env = EnvMap(Get(map, "env"), path + ".env", scope);
            if (image is null && command is null && env.IsEmpty)
            {
                Error(map, path, "deploy changes nothing; give image:, command: or env:");
            }

            TimeSpan? timeout = null;
            if (Get(map, "timeout") is { } timeoutNode)
            {
                timeout = Duration(timeoutNode, path + ".timeout");
            }

            return new DeployDefinition(service ?? Template.Literal(""), image, command, env, timeout);
        }

        private RetryPolicy ParseRetry(YamlNode? node, string path)
        {
            if (node is null)
            {
                return RetryPolicy.None;
            }

            if (node is YamlScalarNode)
            {
                return new RetryPolicy(PositiveInt(node, path) ?? 1, [], TimeSpan.Zero);
            }

            if (Expect<YamlMappingNode>(node, path, "a number of attempts or { attempts, on-exit-codes, delay }") is not { } map)
            {
                return RetryPolicy.None;
            }

            CheckKeys(map, path, ["attempts", "on-exit-codes", "delay"]);
            var codes = ImmutableArray.CreateBuilder<int>();
            foreach (var (text, codeNode) in StringList(Get(map, "on-exit-codes"), path + ".on-exit-codes", allowScalar: true))
            {
                if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) && code is >= 0 and <= 255)
                {
                    codes.Add(code);
                }
                else
                {
                    Error(codeNode, path + ".on-exit-codes", $"'{text}' is not an exit code (0 to 255)");
                }
            }

            return new RetryPolicy(
                PositiveInt(Get(map, "attempts"), path + ".attempts") ?? 2,
                codes.ToImmutable(),
                Get(map, "delay") is { } delay ? Duration(delay, path + ".delay") ?? TimeSpan.Zero : TimeSpan.Zero);
        }

        private CacheDefinition? ParseCache(YamlNode? node, string path, ExpressionScope scope)
        {
            if (node is null || Expect<YamlMappingNode>(node, path, "a mapping with key: and paths:") is not { } map)
            {
                return null;
            }

            CheckKeys(map, path, ["key", "restore-keys", "paths"]);
            var key = TemplateOf(Get(map, "key"), path + ".key", scope);
            if (key is null)
            {
                Error(map, path, "cache needs key:, e.g. key: nuget-${{ hashFiles('**/packages.lock.json') }}");
            }

            var paths = StringList(Get(map, "paths"), path + ".paths", allowScalar: true).Select(p => p.Value).ToImmutableArray();
            if (paths.IsEmpty)
            {
                Error(map, path, "cache needs paths: with the folders to save and restore");
            }

            var restoreKeys = StringNodes(Get(map, "restore-keys"), path + ".restore-keys")
                .Select(n => TemplateOf(n, path + ".restore-keys", scope)).OfType<Template>().ToImmutableArray();
            return new CacheDefinition(key ?? Template.Literal(""), restoreKeys, paths);
        }

        private MatrixDefinition? ParseStrategy(YamlNode? node, string path)
        {
            if (node is null || Expect<YamlMappingNode>(node, path, "a mapping with matrix:") is not { } map)
            {
                return null;
            }

            CheckKeys(map, path, ["matrix", "fail-fast", "max-parallel"]);
            var matrixNode = Get(map, "matrix");
            if (matrixNode is null || Expect<YamlMappingNode>(matrixNode, path + ".matrix", "a mapping of axes to value lists") is not { } matrix)
            {
                if (matrixNode is null)
                {
                    Error(map, path, "strategy needs matrix:");
                }

                return null;
            }

            var axes = ImmutableArray.CreateBuilder<(string, ImmutableArray<string>)>();
            var include = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
            var exclude = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
            foreach (var (keyNode, value) in matrix.Children)
            {
                var key = ((YamlScalarNode)keyNode).Value ?? "";
                if (key is "include" or "exclude")
                {
                    var combos = Combinations(value, $"{path}.matrix.{key}");
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

                var values = StringList(value, $"{path}.matrix.{key}").Select(v => v.Value).ToImmutableArray();
                if (values.IsEmpty)
                {
                    Error(value, $"{path}.matrix.{key}", "a matrix axis needs at least one value");
                }

                axes.Add((key, values));
            }

            var keys = axes.Select(a => a.Item1).ToHashSet();
            foreach (var combo in exclude)
            {
                foreach (var key in combo.Keys.Where(k => !keys.Contains(k)))
                {
                    Error(matrix, $"{path}.matrix.exclude", $"exclude names '{key}', which is not a matrix axis ({string.Join(", ", keys)})");
                }
            }

            if (axes.Count == 0 && include.IsEmpty)
            {
                Error(matrix, path + ".matrix", "the matrix is empty; add an axis such as config: [Debug, Release]");
            }

            return new MatrixDefinition
            {
                Axes = axes.ToImmutable(),
                Include = include,
                Exclude = exclude,
                FailFast = Bool(Get(map, "fail-fast"), path + ".fail-fast") ?? true,
                MaxParallel = PositiveInt(Get(map, "max-parallel"), path + ".max-parallel"),
            };
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

        private PipelineTriggers ParseTriggers(YamlNode? node, string path)
        {
            if (node is null || Expect<YamlMappingNode>(node, path, "a mapping with manual:, watch: or schedule:") is not { } map)
            {
                return new PipelineTriggers();
            }

            CheckKeys(map, path, ["manual", "watch", "schedule"]);
            _ = Bool(Get(map, "manual"), path + ".manual");
            var watch = Get(map, "watch") is YamlMappingNode watchMap ? Get(watchMap, "paths") : Get(map, "watch");
            var schedules = ImmutableArray.CreateBuilder<string>();
            foreach (var item in Get(map, "schedule") is YamlSequenceNode seq ? seq.Children : Get(map, "schedule") is { } one ? [one] : [])
            {
                var cronNode = item is YamlMappingNode cronMap ? Get(cronMap, "cron") ?? item : item;
                var cron = Scalar(cronNode, path + ".schedule");
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
                    Error(cronNode, path + ".schedule", $"'{cron}' is not a cron expression ({e.Message}); use 5 fields, e.g. '0 3 * * *'");
                }
            }

            return new PipelineTriggers
            {
                WatchPaths = [.. StringList(watch, path + ".watch", allowScalar: true).Select(w => w.Value)],
                Schedules = schedules.ToImmutable(),
            };
        }

        private TimeSpan? Timeout(YamlMappingNode map, string path)
        {
            if (Get(map, "timeout") is { } node)
            {
                return Duration(node, path + ".timeout");
            }

            if (Get(map, "timeout-minutes") is { } minutes)
            {
                return PositiveInt(minutes, path + ".timeout-minutes") is { } m ? TimeSpan.FromMinutes(m) : null;
            }

            return null;
        }

        private TimeSpan? Duration(YamlNode node, string path)
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

        private int? PositiveInt(YamlNode? node, string path)
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

        private bool? Bool(YamlNode? node, string path)
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

        private string? Scalar(YamlNode? node, string path)
        {
            if (node is null)
            {
                return null;
            }

            return Expect<YamlScalarNode>(node, path, "a single value")?.Value;
        }

        private List<YamlScalarNode> StringNodes(YamlNode? node, string path)
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

        private List<(string Value, YamlNode Node)> StringList(YamlNode? node, string path, bool allowScalar = false)
        {
            if (node is YamlScalarNode && !allowScalar)
            {
                Error(node, path, "expected a list, e.g. [a, b]");
                return [];
            }

            return StringNodes(node, path).Select(n => (n.Value ?? "", (YamlNode)n)).ToList();
        }

        private ImmutableArray<EnvEntry> EnvMap(YamlNode? node, string path, ExpressionScope scope)
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

        private Template? TemplateOf(YamlNode? node, string path, ExpressionScope scope)
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

        private Expr? Condition(YamlNode? node, string path, ExpressionScope scope)
        {
            if (node is null || Expect<YamlScalarNode>(node, path, "a condition") is not { } scalar)
            {
                return null;
            }

            var text = scalar.Value ?? "";
            var trimmed = text.Trim();
            var offset = 0;
            if (trimmed.StartsWith("${{", StringComparison.Ordinal) && trimmed.EndsWith("}}", StringComparison.Ordinal))
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
