using System.Security.Cryptography;
using System.Text;
using Berth.Core.Model;

namespace Berth.Orchestration.State;

/// <summary>Seals secret values (env vars named in <c>secret_env</c>/<c>secrets:</c>, the content of secret files) before they
/// reach the state store, with AES-256-GCM and a key kept in <c>state.key</c> (0600) beside the API token — as Kubernetes'
/// <c>EncryptionConfiguration</c> (provider <c>aesgcm</c>) keeps Secrets sealed in etcd with a key in a file on the control
/// plane's host. A reference re-read on apply would not do: a detached control plane restarts replicas long after the shell
/// whose environment (or <c>.env</c> file) supplied the value is gone, so the value itself must be kept.</summary>
public sealed class SecretBox
{
    /// <summary>The key's file name inside the state folder.</summary>
    public const string KeyFileName = "state.key";

    /// <summary>Marks a sealed value: <c>berth-sealed:v1:</c> then base64 of nonce (12 bytes), tag (16) and ciphertext.</summary>
    public const string Prefix = "berth-sealed:v1:";

    private const int KeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly byte[] _key;
    private readonly string _keyFile;

    private SecretBox(byte[] key, string keyFile)
    {
        _key = key;
        _keyFile = keyFile;
    }

    /// <summary>Reads the folder's key, or makes one (0600, created exclusively, so two openers never end up with two keys).</summary>
    public static SecretBox OpenOrCreate(string stateDirectory)
    {
        var file = Path.Combine(stateDirectory, KeyFileName);
        if (!File.Exists(file))
        {
            try
            {
                var fresh = RandomNumberGenerator.GetBytes(KeySize);
                StateFolder.WriteNewPrivate(file, Encoding.ASCII.GetBytes(Convert.ToBase64String(fresh) + "\n"));

                return new SecretBox(fresh, file);
            }
            catch (IOException) when (File.Exists(file))
            {
                // Another opener made it first: use theirs.
            }
        }

        StateFolder.MakePrivate(file);
        var text = File.ReadAllText(file).Trim();
        byte[] key;
        try
        {
            key = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            key = [];
        }

        if (key.Length != KeySize)
        {
            throw new StateStoreException(
                $"{file} is not a Berth state key (expected {KeySize} bytes in base64)",
                $"restore it from a backup; if it is lost, the sealed secrets in {StateStore.FileName} cannot be read: run 'berth down', delete the state folder and run 'berth up' again");
        }

        return new SecretBox(key, file);
    }

    /// <summary>The value sealed; the same value sealed twice gives two texts (a fresh nonce each time).</summary>
    public string Seal(string value)
    {
        var plain = Encoding.UTF8.GetBytes(value);
        var output = new byte[NonceSize + TagSize + plain.Length];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plain, output.AsSpan(NonceSize + TagSize), output.AsSpan(NonceSize, TagSize));
        return Prefix + Convert.ToBase64String(output);
    }

    /// <summary>The value a <see cref="Seal(string)"/> text holds; a text without the prefix (an older store's plain value) as it is.</summary>
    public string Open(string text)
    {
        if (!text.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return text;
        }

        byte[] data;
        try
        {
            data = Convert.FromBase64String(text[Prefix.Length..]);
        }
        catch (FormatException)
        {
            data = [];
        }

        if (data.Length < NonceSize + TagSize)
        {
            throw Unreadable("it is cut short");
        }

        var plain = new byte[data.Length - NonceSize - TagSize];
        try
        {
            using var aes = new AesGcm(_key, TagSize);
            aes.Decrypt(data.AsSpan(0, NonceSize), data.AsSpan(NonceSize + TagSize), data.AsSpan(NonceSize, TagSize), plain);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw Unreadable($"{_keyFile} is not the key it was sealed with");
        }

        return Encoding.UTF8.GetString(plain);
    }

    /// <summary>Is <paramref name="text"/> a sealed value?</summary>
    public static bool IsSealed(string? text) => text?.StartsWith(Prefix, StringComparison.Ordinal) == true;

    public Application Seal(Application app) => Map(app, Seal);

    public Application Open(Application app) => Map(app, Open);

    public Service Seal(Service service) => Map(service, Seal);

    public Service Open(Service service) => Map(service, Open);

    /// <summary>True when any secret value of <paramref name="app"/> is held in plain text (a store written by an older Berth).</summary>
    public static bool HasPlainSecrets(Application app) =>
        app.Services.Any(s => s.SecretEnv.Any(k => s.Env.TryGetValue(k, out var v) && !IsSealed(v))
            || s.Files.Any(f => f.Kind == MountedFileKind.Secret && f.Content is not null && !IsSealed(f.Content)));

    private static Application Map(Application app, Func<string, string> map) =>
        app with { Services = [.. app.Services.Select(s => Map(s, map))] };

    private static Service Map(Service service, Func<string, string> map)
    {
        if (service.SecretEnv.IsEmpty && !service.Files.Any(f => f.Kind == MountedFileKind.Secret && f.Content is not null))
        {
            return service;
        }

        var env = service.Env;
        foreach (var key in service.SecretEnv)
        {
            if (env.TryGetValue(key, out var value))
            {
                env = env.SetItem(key, map(value));
            }
        }

        return service with
        {
            Env = env,
            Files = [.. service.Files.Select(f => f.Kind == MountedFileKind.Secret && f.Content is { } c ? f with { Content = map(c) } : f)],
        };
    }

    private StateStoreException Unreadable(string why) => new(
        $"a secret value in {StateStore.FileName} cannot be unsealed: {why}",
        $"put back the {KeyFileName} that belongs with this {StateStore.FileName}; if it is lost, run 'berth down', delete the state folder and run 'berth up' again");
}
