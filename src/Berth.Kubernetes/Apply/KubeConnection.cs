using k8s;
using k8s.Exceptions;

namespace Berth.Kubernetes.Apply;

/// <summary>A connection to a cluster from the standard kubeconfig places, and the namespace its context names.</summary>
public sealed class KubeConnection : IDisposable
{
    private readonly k8s.Kubernetes _client;

    private KubeConnection(k8s.Kubernetes client, string host, string defaultNamespace, string? context)
    {
        _client = client;
        Api = new KubernetesApi(client, host);
        Host = host;
        DefaultNamespace = defaultNamespace;
        Context = context;
    }

    internal IKubernetesApi Api { get; }

    public string Host { get; }

    /// <summary>The context's namespace, else <c>default</c>, as kubectl.</summary>
    public string DefaultNamespace { get; }

    public string? Context { get; }

    /// <summary>Opens the kubeconfig as kubectl finds it: the first existing file in <c>KUBECONFIG</c>, else <c>~/.kube/config</c>,
    /// else the in-cluster service account. Throws <see cref="KubernetesApiException"/> with what to do when there is none.</summary>
    public static KubeConnection Open(string? context = null)
    {
        KubernetesClientConfiguration config;
        try
        {
            var file = FindKubeconfig();
            if (file is null)
            {
                if (!KubernetesClientConfiguration.IsInCluster())
                {
                    throw new KubernetesApiException(
                        "no kubeconfig found: set KUBECONFIG or create ~/.kube/config (your cluster's CLI writes it, e.g. 'kind export kubeconfig' or 'az aks get-credentials')", null);
                }

                if (context is not null)
                {
                    throw new KubernetesApiException($"--context {context} needs a kubeconfig, and none was found (set KUBECONFIG)", null);
                }

                config = KubernetesClientConfiguration.InClusterConfig();
            }
            else
            {
                config = KubernetesClientConfiguration.BuildConfigFromConfigFile(new FileInfo(file), currentContext: context);
            }
        }
        catch (KubeConfigException e)
        {
            throw new KubernetesApiException($"kubeconfig: {e.Message}{(context is null ? "" : $" (context '{context}'; 'kubectl config get-contexts' lists them)")}", null, e);
        }

        var client = new k8s.Kubernetes(config);
        return new KubeConnection(client, config.Host, string.IsNullOrEmpty(config.Namespace) ? "default" : config.Namespace, config.CurrentContext);
    }

    private static string? FindKubeconfig()
    {
        var variable = Environment.GetEnvironmentVariable("KUBECONFIG");
        if (!string.IsNullOrEmpty(variable))
        {
            return variable.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists);
        }

        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var path = Path.Combine(home, ".kube", "config");
        return File.Exists(path) ? path : null;
    }

    public void Dispose() => _client.Dispose();
}
