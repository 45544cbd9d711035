using System.Text;
using k8s.Models;

namespace Berth.Kubernetes;

/// <summary>Writes <c>overlays/NAME/kustomization.yaml</c> beside the generated base: it builds on the base (<c>resources: [../..]</c>) and lists
/// each workload's replicas and each image, so an environment changes them in one place (<c>kubectl apply -k k8s/overlays/prod</c>).</summary>
public static class KustomizeOverlay
{
    /// <summary>Writes the overlay unless it exists (it is the environment's own file once written); returns its path and whether it was written.</summary>
    public static (string Path, bool Written) WriteTo(ManifestSet set, string baseDirectory, string name)
    {
        var directory = System.IO.Path.Combine(baseDirectory, "overlays", name);
        var path = System.IO.Path.Combine(directory, "kustomization.yaml");
        if (File.Exists(path))
        {
            return (path, false);
        }

        Directory.CreateDirectory(directory);
        File.WriteAllText(path, Text(set, name));
        return (path, true);
    }

    /// <summary>The overlay's kustomization.yaml.</summary>
    public static string Text(ManifestSet set, string name)
    {
        var text = new StringBuilder();
        text.Append(System.Globalization.CultureInfo.InvariantCulture, $"# Overlay '{name}' of the manifests in ../.. (berth k8s generate): change replicas and images here; berth does not overwrite this file.\n");
        text.Append("apiVersion: kustomize.config.k8s.io/v1beta1\n");
        text.Append("kind: Kustomization\n");
        text.Append("resources:\n- ../..\n");
        var replicas = set.Objects
            .Select(o => (o.Name, Replicas: o.Object switch { V1Deployment d => d.Spec.Replicas, V1StatefulSet s => s.Spec.Replicas, _ => null }))
            .Where(r => r.Replicas is not null)
            .ToList();
        if (replicas.Count > 0)
        {
            // kustomize's replicas field sets spec.replicas of the Deployment or StatefulSet of that name (not of autoscaled ones: the HPA owns theirs)
            text.Append("replicas:\n");
            foreach (var (objectName, count) in replicas)
            {
                text.Append(System.Globalization.CultureInfo.InvariantCulture, $"- name: {objectName}\n  count: {count}\n");
            }
        }

        var images = set.Objects
            .SelectMany(o => o.Object switch
            {
                V1Deployment d => d.Spec.Template.Spec.Containers,
                V1StatefulSet s => s.Spec.Template.Spec.Containers,
                V1Job j => j.Spec.Template.Spec.Containers,
                _ => [],
            })
            .Select(c => c.Image)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (images.Count > 0)
        {
            // kustomize matches an image by its name without tag or digest and sets newName/newTag
            text.Append("images:\n");
            foreach (var image in images)
            {
                var (imageName, tag, digest) = Split(image);
                text.Append("- name: ").Append(imageName).Append('\n');
                text.Append("  newName: ").Append(imageName).Append('\n');
                if (digest is not null)
                {
                    text.Append("  digest: ").Append(digest).Append('\n');
                }
                else if (tag is not null)
                {
                    text.Append("  newTag: ").Append(System.Text.Json.JsonSerializer.Serialize(tag)).Append('\n');
                }
            }
        }

        return text.ToString();
    }

    // registry:5000/team/api:1.2@sha256:… → (registry:5000/team/api, 1.2, sha256:…); a ':' before the last '/' is a registry port.
    private static (string Name, string? Tag, string? Digest) Split(string image)
    {
        string? digest = null;
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = image[(at + 1)..];
            image = image[..at];
        }

        var colon = image.LastIndexOf(':');
        return colon > image.LastIndexOf('/') ? (image[..colon], image[(colon + 1)..], digest) : (image, null, digest);
    }
}
