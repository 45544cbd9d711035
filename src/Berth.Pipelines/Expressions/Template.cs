using System.Collections.Immutable;
using System.Text;

namespace Berth.Pipelines.Expressions;

/// <summary>A string with <c>${{ expression }}</c> parts, parsed once and rendered per run.</summary>
public sealed record Template(ImmutableArray<Template.Part> Parts)
{
    /// <summary>Literal text, or an expression with its offset in the original string.</summary>
    public sealed record Part(string? Literal, Expr? Expression, int Offset);

    public static Template Literal(string text) => new([new Part(text, null, 0)]);

    public bool HasExpressions => Parts.Any(p => p.Expression is not null);

    /// <summary>Parses; an error's offset is within <paramref name="text"/>.</summary>
    public static Template Parse(string text)
    {
        var parts = ImmutableArray.CreateBuilder<Part>();
        var i = 0;
        while (i < text.Length)
        {
            var open = text.IndexOf("${{", i, StringComparison.Ordinal);
            if (open < 0)
            {
                parts.Add(new Part(text[i..], null, i));
                break;
            }

            if (open > i)
            {
                parts.Add(new Part(text[i..open], null, i));
            }

            // The closing }} is the first one outside a string: ${{ '}}' }} is the text }}.
            var close = ExpressionParser.Lexer.FindClose(text, open + 3);
            if (close < 0)
            {
                throw new ExpressionException("'${{' is not closed; end the expression with }}", open);
            }

            var inner = text[(open + 3)..close];
            try
            {
                // An empty ${{ }} renders '', as GitHub's.
                parts.Add(string.IsNullOrWhiteSpace(inner)
                    ? new Part(null, new LiteralExpr("") { Offset = 0 }, open + 3)
                    : new Part(null, ExpressionParser.Parse(inner), open + 3));
            }
            catch (ExpressionException e)
            {
                throw new ExpressionException(e.Message, open + 3 + e.Offset);
            }

            i = close + 2;
        }

        return new Template(parts.ToImmutable());
    }

    /// <summary>The text with every expression's value cast to a string (arrays and objects as JSON).</summary>
    public string Render(ExpressionContext context)
    {
        if (Parts.Length == 1 && Parts[0].Literal is { } only)
        {
            return only;
        }

        var text = new StringBuilder();
        foreach (var part in Parts)
        {
            text.Append(part.Literal ?? ExpressionEvaluator.ToText(ExpressionEvaluator.Evaluate(part.Expression!, context)));
        }

        return text.ToString();
    }

    public IEnumerable<(Expr Expression, int Offset)> Expressions =>
        Parts.Where(p => p.Expression is not null).Select(p => (p.Expression!, p.Offset));
}
