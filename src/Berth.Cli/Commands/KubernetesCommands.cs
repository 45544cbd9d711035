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
        k8s.Subcommands.Add(Diff());
        k8s.Subcommands.Add(Status());
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
        Description = "Server-side dry run: the cluster validates and admits each object and stores nothing. A dry run creates no namespace, "
            + "so objects bound for a namespace that does not exist yet are reported as not checked.",
    };

    private static Command Generate()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var outputDir = new Option<string?>("--output-dir", "-d")
        {
            Description = "Folder to write to (default: k8s, or chart with --format helm), or '-' for one YAML stream on stdout.",
        };
        // -o is the output format, as everywhere (docs/cli.md): the manifests on stdout instead of a folder, as kubectl -o yaml|json.
        var output = new Option<string?>("--output", "-o")
        {
            Description = "Print the manifests on stdout instead of writing a folder: yaml (one YAML stream, as -d -) or json (one kubectl-style List).",
            HelpName = "FORMAT",
        }.AcceptOnlyFromAmong("yaml", "json");
        var format = new Option<string>("--format")
        {
            Description = "yaml: one file per object and a kustomization.yaml; helm: a Helm chart (Chart.yaml, values.yaml with each service's image, replicas, resources and env, templates/).",
            DefaultValueFactory = _ => "yaml",
        }.AcceptOnlyFromAmong("yaml", "helm");
        var overlay = new Option<string[]>("--overlay")
        {
            Description = "Also write overlays/NAME/kustomization.yaml on top of the manifests, with each service's replicas and image to change per environment (repeatable; an existing overlay is kept).",
            AllowMultipleArgumentsPerToken = false,
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
        GenerateOptions GenerateOptionsFrom(ParseResult parse) => Options(parse.GetValue(ns), parse.GetValue(mesh)) with
        {
            IngressDomain = parse.GetValue(ingressDomain),
            VolumeSize = parse.GetValue(volumeSize)!,
            PublishedTcp = parse.GetValue(publishedTcp) == "nodeport" ? PublishedServiceType.NodePort : PublishedServiceType.LoadBalancer,
        };

        var command = new Command("generate", "Write Kubernetes manifests (and Istio resources with --mesh istio) for the spec.")
        {
            file, profiles, outputDir, output, format, overlay, ns, mesh, ingressDomain, volumeSize, publishedTcp,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => parse.GetValue(output) == "json" && parse.GetValue(outputDir) is null
            ? KubernetesWorkflow.GenerateListJsonAsync(app, GenerateOptionsFrom(parse), Console.Out, Console.Error, ct)
            : KubernetesWorkflow.GenerateAsync(
            app,
            parse.GetValue(outputDir) ?? (parse.GetValue(output) is not null ? "-" : parse.GetValue(format) == "helm" ? "chart" : "k8s"),
            GenerateOptionsFrom(parse),
            parse.GetValue(format) == "helm" ? ManifestFormat.Helm : ManifestFormat.Yaml,
            parse.GetValue(overlay) ?? [],
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
        var ns = NamespaceOption("Namespace to apply into (created if missing, except by --dry-run); default: the context's namespace, else 'default'.");
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
        var wait = new Option<bool>("--wait")
        {
            Description = "Wait until each object is gone, finalizers done (a claim stays while a pod mounts it), as kubectl delete; --wait=false returns once deletion is requested.",
            DefaultValueFactory = _ => true,
        };
        var timeout = new Option<string?>("--timeout") { Description = "Longest wait for the objects to be gone (e.g. 2m); default 10m." };
        var command = new Command("delete", "Delete what 'berth k8s apply' created for the spec (claims and the namespace are kept).")
        {
            file, profiles, context, ns, mesh, dryRun, volumes, wait, timeout,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => KubernetesWorkflow.DeleteAsync(
            app,
            Options(parse.GetValue(ns), parse.GetValue(mesh)),
            parse.GetValue(context),
            new Berth.Kubernetes.Apply.ApplyOptions { DryRun = parse.GetValue(dryRun), DeleteVolumes = parse.GetValue(volumes), Wait = parse.GetValue(wait) },
            parse.GetValue(timeout),
            Console.Out,
            Console.Error,
            ct)));
        return command;
    }

    private static Command Diff()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var context = ContextOption();
        var ns = NamespaceOption("Namespace to compare in; default: the context's namespace, else 'default'.");
        var mesh = MeshOption();
        var force = new Option<bool>("--force-conflicts") { Description = "Dry-run the apply taking over fields another field manager owns, as apply --force-conflicts would." };
        var prune = new Option<bool>("--prune") { Description = "Count the objects apply --prune would remove as differences and show them as removed (they are listed either way)." };
        var command = new Command("diff", "Show what 'berth k8s apply' would change: a server-side dry run of each object diffed against the live one (unified, managed fields hidden), "
            + "as kubectl diff. Exit 0: no differences, 1: differences, above 1: an error.")
        {
            file, profiles, context, ns, mesh, force, prune,
        };
        command.SetAction((parse, ct) => Run(
            parse,
            file,
            profiles,
            app => KubernetesWorkflow.DiffAsync(
                app,
                Options(parse.GetValue(ns), parse.GetValue(mesh)),
                parse.GetValue(context),
                new Berth.Kubernetes.Apply.ApplyOptions { ForceConflicts = parse.GetValue(force), Prune = parse.GetValue(prune) },
                Console.Out,
                Console.Error,
                ct),
            invalidSpecExit: ExitCodes.Failed)); // 1 means "differences" here, as in kubectl diff; a spec error must not read as one
        return command;
    }

    private static Command Status()
    {
        var file = SpecFile.CreateFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var context = ContextOption();
        var ns = NamespaceOption("Namespace to read; default: the context's namespace, else 'default'.");
        var mesh = MeshOption();
        var command = new Command("status", "Show each service's live state on the cluster (ready/updated/available, pod reasons, autoscaler replicas and metrics) "
            + "and drift: fields another field manager changed since berth applied them.")
        {
            file, profiles, context, ns, mesh,
        };
        command.SetAction((parse, ct) => Run(parse, file, profiles, app => KubernetesWorkflow.StatusAsync(
            app,
            Options(parse.GetValue(ns), parse.GetValue(mesh)),
            parse.GetValue(context),
            Console.Out,
            Console.Error,
            ct)));
        return command;
    }

    private static async Task<int> Run(ParseResult parse, Option<string?> file, Option<string[]> profiles, Func<Berth.Core.Model.Application, Task<WorkflowOutcome>> workflow, int invalidSpecExit = ExitCodes.InvalidSpec)
    {
        var spec = SpecFile.Load(parse.GetValue(file), parse.GetValue(profiles), Console.Error);
        if (spec.Application is null)
        {
            return spec.ExitCode == ExitCodes.InvalidSpec ? invalidSpecExit : spec.ExitCode;
        }

        try
        {
            return await workflow(spec.Application) switch
            {
                WorkflowOutcome.Ok => ExitCodes.Ok,
                WorkflowOutcome.InvalidSpec => invalidSpecExit,
                WorkflowOutcome.Differences => ExitCodes.Differences,
                WorkflowOutcome.Usage => ExitCodes.Usage,
                WorkflowOutcome.Failed => ExitCodes.Failed,
                WorkflowOutcome.Unavailable => ExitCodes.Unavailable,
                WorkflowOutcome.Cancelled => ExitCodes.Cancelled,
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
