
namespace Berth.Pipelines.Tests.Execution;

/// <summary>Whatever the secrets (overlapping, sharing prefixes, UTF-8 beyond ASCII, regex characters) and however the output
/// is cut into writes, no secret comes out of the masker, and streaming masks exactly as masking the whole text does.</summary>
public sealed class SecretMaskerPropertyTests
{
    // A small alphabet makes overlaps, shared prefixes and near-misses common; the mask's '*' is left out of secrets, as a
    // secret made of '*' would "appear" in every mask.
    private static readonly Gen<char> Chars = Gen.OneOf(Gen.Char['a', 'c'], Gen.OneOf('.', '(', '[', '\\', '$', '^', '+', '?', '|', 'é', 'ß', '✓', '中', '\n', ' '));

    private static readonly Gen<string> Secrets = Gen.String[Gen.OneOf(Gen.Char['a', 'c'], Gen.OneOf('.', '(', '[', '\\', '$', '^', '+', '?', '|', 'é', 'ß', '✓', '中')), 1, 6];

    /// <summary>Secrets, and a text made of pieces of them and random characters, and where to cut it into writes.</summary>
    private static readonly Gen<(string[] Secrets, string Text, int[] Cuts)> Cases =
        Secrets.Array[1, 4].SelectMany(secrets =>
            Gen.OneOf(
                Gen.Int[0, secrets.Length - 1].Select(i => secrets[i]),
                Gen.Int[0, secrets.Length - 1].SelectMany(i => Gen.Int[0, secrets[i].Length].Select(n => secrets[i][..n])),
                Gen.String[Chars, 0, 4])
            .Array[0, 12]
            .SelectMany(pieces => Gen.Int[0, 200].Array[0, 8].Select(cuts => (secrets, string.Concat(pieces), cuts))));

    [Fact]
    public void WriteAndFlush_AnySecretsAnyCuts_NoSecretInTheOutputAndSameAsMaskingTheWhole()
    {
        Cases.Sample((secrets, text, cuts) =>
        {
            var masker = new SecretMasker(secrets);
            var whole = masker.MaskText(text);

            var stream = masker.Open();
            var output = new System.Text.StringBuilder();
            var at = 0;
            foreach (var cut in cuts.Select(c => Math.Min(c, text.Length)).Order())
            {
                output.Append(stream.Write(text.AsSpan(at, cut - at)));
                at = cut;
            }

            output.Append(stream.Write(text.AsSpan(at))).Append(stream.Flush());

            Assert.Equal(whole, output.ToString());
            // Line breaks are not part of what is matched ("hun\nter2" is "hunter2"), so none may hide a secret either.
            var flat = whole.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal);
            foreach (var secret in secrets.Select(s => s.Replace("\n", "", StringComparison.Ordinal)).Where(s => s.Length > 0))
            {
                Assert.False(flat.Contains(secret, StringComparison.Ordinal), $"secret '{secret}' in the masked output '{whole}' of '{text}'");
            }
        }, iter: 2000);
    }
}
