
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

    [Theory]
    [MemberData(nameof(Files))]
    public void LoadText_EveryTruncation_GivesAModelOrPositionedErrors(string spec)
    {
        var path = Repository.Path(spec);
        var text = File.ReadAllText(path);
        var options = new LoadOptions { Environment = new Dictionary<string, string>() };
        for (var length = 0; length <= text.Length; length++)
        {
            var result = SpecLoader.LoadText(text[..length], path, options);

            Assert.True(result.Succeeded || result.Errors.Any(), $"cut at {length}: failed without an error");
            Assert.All(result.Diagnostics, d => Assert.True(d.Line >= 1 && d.Column >= 1, $"cut at {length}: {d} has no position"));
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void LoadText_RandomCharacterEdits_NeverThrow(string spec)
    {
        var path = Repository.Path(spec);
        var text = File.ReadAllText(path);
        var options = new LoadOptions { Environment = new Dictionary<string, string>() };
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
            var result = SpecLoader.LoadText(mutated, path, options);

            Assert.True(result.Succeeded || result.Errors.Any(), $"edit {i} failed without an error:\n{mutated}");
        }
    }
}
