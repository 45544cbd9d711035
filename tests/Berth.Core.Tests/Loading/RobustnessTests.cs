
namespace Berth.Core.Tests.Loading;

/// <summary>No input makes the loader throw: whatever the text, the answer is a model or positioned diagnostics.</summary>
public class RobustnessTests
{
    public static TheoryData<string> Files() =>
    [
        "samples/shop/berth.yaml",
        "samples/compose/rails-sidekiq/compose.yaml",
        "samples/compose/spring-mysql/compose.yaml",
    ];

    /// <summary>The sample's text, and the loader of any text under the sample's own path (no environment variables).</summary>
    private static (string Text, Func<string, LoadResult> Load) Sample(string spec)
    {
        var path = Repository.Path(spec);
        return (File.ReadAllText(path), text => SpecLoader.LoadText(text, path, new LoadOptions { Environment = new Dictionary<string, string>() }));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void LoadText_EveryTruncation_GivesAModelOrPositionedErrors(string spec)
    {
        var (text, load) = Sample(spec);
        for (var length = 0; length <= text.Length; length++)
        {
            var result = load(text[..length]);

            Assert.True(result.Succeeded || result.Errors.Any(), $"cut at {length}: failed without an error");
            Assert.All(result.Diagnostics, d => Assert.True(d.Line >= 1 && d.Column >= 1, $"cut at {length}: {d} has no position"));
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void LoadText_RandomCharacterEdits_NeverThrow(string spec)
    {
        var (text, load) = Sample(spec);
        var random = new Random(20261125); // fixed seed: the same edits every run
        const string Alphabet = ":-[]{}'\"$#&*!|>%@` \n\t0aZ";
        for (var i = 0; i < 400; i++)
        {
            var chars = text.ToCharArray();
            for (var edits = 0; edits < 3; edits++)
            {
                chars[random.Next(chars.Length)] = Alphabet[random.Next(Alphabet.Length)];
            }

            var mutated = new string(chars);
            var result = load(mutated);

            Assert.True(result.Succeeded || result.Errors.Any(), $"edit {i} failed without an error:\n{mutated}");
        }
    }
}
