using System.CommandLine;
using Berth.Kubernetes;

namespace Berth.Cli.Commands;

/// <summary>k8s generate|apply|delete.</summary>
internal static class KubernetesCommands
{
    public static IEnumerable<Command> Create()
    {
        var k8s = new Command("k8s", "Run the same spec on Kubernetes: generate manifests, apply them with server-side apply, delete them.");
        k8s.Subcommands.Add(Generate());
        k8s.Subcommands.Add(Apply());
        k8s.Subcommands.Add(Delete());
        return [k8s];
    }


    private static Option<string?> NamespaceOption(string description) => new("--namespace", "-n") { Description = description };

    private static Option<string> MeshOption() => new Option<string>("--mesh")
    {
        Description = "Service mesh to carry the mesh policies to: none or istio (DestinationRule + VirtualService per service).",
        DefaultValueFactory = _ => "none",
    }.AcceptOnlyFromAmong("none", "istio");

    private static Option<string?> ContextOption() => new("--context")
    {
        Description = "Kubeconfig context; default: the current context (kubeconfig from KUBECONFIG or ~/.kube/config).",
    };

    private static Option<bool> DryRunOption() => new("--dry-run")
    {
        Description = "Server-side dry run: the cluster validates and admits everything, stores nothing.",
    };

    private static Command Generate()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var output = new Option<string>("--output", "-o")
        {
            Description = "Folder to write the manifests and kustomization.yaml to, or '-' for one YAML stream on stdout.",
            DefaultValueFactory = _ => "k8s",
        };
        var ns = NamespaceOption("Namespace to put every object in (a Namespace object is generated too); default: none, the cluster context decides.");
        var mesh = MeshOption();
        var ingressDomain = new Option<string?>("--ingress-domain") { Description = "Give each public service the Ingress host SERVICE.DOMAIN." };
        var volumeSize = new Option<string>("--volume-size")
        {
            Description = $"Storage each PersistentVolumeClaim requests (default {GenerateDefaults.VolumeSize}).",
            DefaultValueFactory = _ => GenerateDefaults.VolumeSize,
        };
        var publishedTcp = new Option<string>("--published-tcp")
        {
            Description = "Service type for public TCP endpoints (Compose published ports that are not HTTP): loadbalancer or nodeport.",
            DefaultValueFactory = _ => "loadbalancer",
        }.AcceptOnlyFromAmong("loadbalancer", "nodeport");
        var command = new Command("generate", "Write Kubernetes manifests (and Istio resources with --mesh istio) for the spec.")
        {
            file, profiles, output, ns, mesh, ingressDomain, volumeSize, publishedTcp,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => KubernetesWorkflow.GenerateAsync(
            app,
            parse.GetValue(output)!,
            Options(parse.GetValue(ns), parse.GetValue(mesh)) with
            {
                IngressDomain = parse.GetValue(ingressDomain),
                VolumeSize = parse.GetValue(volumeSize)!,
                PublishedTcp = parse.GetValue(publishedTcp) == "nodeport" ? PublishedServiceType.NodePort : PublishedServiceType.LoadBalancer,
            },
            Console.Out,
            Console.Error,
            ct)));
        return command;
    }

    private static Command Apply()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var context = ContextOption();
        var ns = NamespaceOption("Namespace to apply into (created if missing); default: the context's namespace, else 'default'.");
        var mesh = MeshOption();
        var dryRun = DryRunOption();
        var force = new Option<bool>("--force-conflicts") { Description = "Take over fields that another field manager owns (as kubectl apply --server-side --force-conflicts)." };
        var prune = new Option<bool>("--prune") { Description = "Delete this app's objects that the spec no longer produces (by its labels), as kubectl apply --prune; claims are kept." };
        var noWait = new Option<bool>("--no-wait") { Description = "Do not wait for the Deployments and StatefulSets to roll out." };
        var timeout = new Option<string?>("--timeout") { Description = "Longest wait for each rollout (e.g. 5m); default: the service's progress deadline (10m)." };
        var command = new Command("apply", "Apply the spec to a cluster with server-side apply (field manager 'berth') and wait for each rollout.")
        {
            file, profiles, context, ns, mesh, dryRun, force, prune, noWait, timeout,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => KubernetesWorkflow.ApplyAsync(
            app,
            Options(parse.GetValue(ns), parse.GetValue(mesh)),
            parse.GetValue(context),
            new Berth.Kubernetes.Apply.ApplyOptions
            {
                DryRun = parse.GetValue(dryRun),
                ForceConflicts = parse.GetValue(force),
                Prune = parse.GetValue(prune),
                Wait = !parse.GetValue(noWait),
            },
            parse.GetValue(timeout),
            Console.Out,
            Console.Error,
            ct)));
        return command;
    }

    private static Command Delete()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var context = ContextOption();
        var ns = NamespaceOption("Namespace to delete from; default: the context's namespace, else 'default'.");
        var mesh = MeshOption();
        var dryRun = DryRunOption();
        var volumes = new Option<bool>("--volumes") { Description = "Also delete the PersistentVolumeClaims, and so the data (as docker compose down --volumes)." };
        var command = new Command("delete", "Delete what 'berth k8s apply' created for the spec (claims and the namespace are kept).")
        {
            file, profiles, context, ns, mesh, dryRun, volumes,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => KubernetesWorkflow.DeleteAsync(
            app,
            Options(parse.GetValue(ns), parse.GetValue(mesh)),
            parse.GetValue(context),
            new Berth.Kubernetes.Apply.ApplyOptions { DryRun = parse.GetValue(dryRun), DeleteVolumes = parse.GetValue(volumes) },
            Console.Out,
            Console.Error,
            ct)));
        return command;
    }

    private static async Task<int> Run(ParseResult parse, Option<string?> file, Option<string[]> profiles, Func<Berth.Core.Model.Application, Task<WorkflowOutcome>> workflow)
    {
        var spec = SpecFile.Load(parse.GetValue(file), parse.GetValue(profiles), Console.Error);
        if (spec.Application is null)
        {
            return spec.ExitCode;
        }

        try
        {
            return await workflow(spec.Application) switch
            {
                WorkflowOutcome.Ok => ExitCodes.Ok,
                WorkflowOutcome.InvalidSpec => ExitCodes.InvalidSpec,
                WorkflowOutcome.Usage => ExitCodes.Usage,
                WorkflowOutcome.Failed => ExitCodes.Failed,
                WorkflowOutcome.Unavailable => ExitCodes.Unavailable,
                _ => ExitCodes.Cancelled,
            };
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("berth: interrupted");
            return ExitCodes.Cancelled;
        }
    }

    private static GenerateOptions Options(string? ns, string? mesh) => new()
    {
        Namespace = string.IsNullOrEmpty(ns) ? null : ns,
        Mesh = mesh == "istio" ? MeshTarget.Istio : MeshTarget.None,
    };
}
