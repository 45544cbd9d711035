using Berth.Core.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>A service while its keys are read: the record so far plus what is assembled at the end (env in file order,
/// endpoints and dependencies with their positions for the checks that span services).</summary>
internal sealed class ServiceDraft(string name, string path, Mark at)
{
    public string Name { get; } = name;

    public string Path { get; } = path;

    public Mark At { get; } = at;

    /// <summary>The service's name where it was first declared.</summary>
    public required YamlScalarNode KeyNode { get; init; }

    public Service S { get; set; } = new() { Name = name };

    /// <summary>Values from env files, in file order; applied before <see cref="Env"/>.</summary>
    public List<EnvEntry> EnvFileEntries { get; } = [];

    public List<EnvEntry> Env { get; } = [];

    public List<EnvEntry> Secrets { get; } = [];

    public List<(string Name, YamlNode Node, string Path)> SecretNames { get; } = [];

    public List<Located<Endpoint>> Endpoints { get; } = [];

    /// <summary>Compose <c>links</c> entries (<c>SERVICE[:ALIAS]</c>) with their path; the alias becomes a name of SERVICE.</summary>
    public List<(string Link, string Path)> Links { get; } = [];

    public List<Located<Dependency>> DependsOn { get; } = [];

    public List<Located<VolumeMount>> Volumes { get; } = [];

    /// <summary><c>develop.watch</c> rules with where each was written (its target node, else the rule).</summary>
    public List<Located<WatchRule>> Watch { get; } = [];

    /// <summary>Where <c>develop.hot_reload</c> was written, for the error when the service is not a process.</summary>
    public (YamlDotNet.RepresentationModel.YamlNode Node, string Path)? HotReloadAt { get; set; }

    /// <summary>Compose secrets: and configs: entries, resolved against the top-level ones at the end.</summary>
    public List<SpecReader.FileRef> Files { get; } = [];

    /// <summary>Whether run: was given, for the "neither image nor run" check.</summary>
    public bool HasRun { get; set; }

    public bool HasImage { get; set; }

    /// <summary><c>run:</c> as written when it was a string: with <c>shell: true</c> it goes to the shell whole, unsplit.</summary>
    public string? RunText { get; set; }

    /// <summary>Compose keys that say the same thing two ways (<c>scale</c> and <c>deploy.replicas</c>, …): the path each
    /// was given at, its value as written and where, so distinct values are an error naming both, as Compose.</summary>
    public Dictionary<string, (string Text, object Value, YamlNode Node)> Aliases { get; } = new(StringComparer.Ordinal);

    /// <summary>Whether <c>deploy.restart_policy</c> was given: it wins over <c>restart:</c> wherever each is written.</summary>
    public bool HasRestartPolicy { get; set; }

    /// <summary>The Compose healthcheck, which becomes the readiness probe unless x-berth sets one.</summary>
    public Probe? Healthcheck { get; set; }
}

internal sealed record EnvEntry(string Key, string? Value, YamlNode Node, string Path);

/// <summary>A value with the place in the spec it came from.</summary>
internal sealed record Located<T>(T Value, YamlNode Node, string Path);
