using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace Berth.Pipelines.Expressions;

/// <summary>A parsed <c>${{ ... }}</c> / <c>if:</c> expression: GitHub Actions' syntax, a small subset of it.</summary>
public abstract record Expr
{
    /// <summary>Offset of this node in the expression text, for error positions.</summary>
    public int Offset { get; init; }
}

public sealed record LiteralExpr(object? Value) : Expr;

/// <summary>A context reference such as <c>env.NAME</c>, <c>matrix.os</c>, <c>secrets.TOKEN</c> or <c>branch</c>.</summary>
public sealed record ContextExpr(ImmutableArray<string> Path) : Expr
{
    public override string ToString() => string.Join('.', Path);
}

public sealed record NotExpr(Expr Operand) : Expr;

public sealed record BinaryExpr(string Operator, Expr Left, Expr Right) : Expr;

public sealed record CallExpr(string Function, ImmutableArray<Expr> Arguments) : Expr;

/// <summary>A syntax or validation error at an offset in the expression text.</summary>
public sealed class ExpressionException(string message, int offset) : Exception(message)
{
    public int Offset { get; } = offset;
}

/// <summary>Recursive-descent parser: or → and → equality → comparison → unary → primary.</summary>
public sealed class ExpressionParser
{
    private readonly string _text;
    private readonly List<Token> _tokens;
    private int _index;

    private ExpressionParser(string text)
    {
        _text = text;
        _tokens = Tokenize(text);
    }

    public static Expr Parse(string text)
    {
        var parser = new ExpressionParser(text);
        if (parser._tokens.Count == 1)
        {
            throw new ExpressionException("empty expression; write a condition such as success() or env.DEPLOY == 'true'", 0);
        }

        var expr = parser.ParseOr();
        var next = parser.Peek;
        if (next.Kind != TokenKind.End)
        {
            throw new ExpressionException($"unexpected '{next.Text}' after a complete expression; join conditions with && or ||", next.Offset);
        }

        return expr;
    }

    private Token Peek => _tokens[_index];

    private Token Next() => _tokens[_index++];

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.Kind == TokenKind.Operator && Peek.Text == "||")
        {
            var op = Next();
            left = new BinaryExpr("||", left, ParseAnd()) { Offset = op.Offset };
        }

        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseEquality();
        while (Peek.Kind == TokenKind.Operator && Peek.Text == "&&")
        {
            var op = Next();
            left = new BinaryExpr("&&", left, ParseEquality()) { Offset = op.Offset };
        }

        return left;
    }

    private Expr ParseEquality()
    {
        var left = ParseComparison();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "==" or "!=")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseComparison()) { Offset = op.Offset };
        }

        return left;
    }

    private Expr ParseComparison()
    {
        var left = ParseUnary();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "<" or "<=" or ">" or ">=")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseUnary()) { Offset = op.Offset };
        }

        return left;
    }

    private Expr ParseUnary()
    {
        if (Peek.Kind == TokenKind.Operator && Peek.Text == "!")
        {
            var op = Next();
            return new NotExpr(ParseUnary()) { Offset = op.Offset };
        }

        return ParsePrimary();
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.String:
                return new LiteralExpr(token.Text) { Offset = token.Offset };
            case TokenKind.Number:
                return new LiteralExpr(double.Parse(token.Text, CultureInfo.InvariantCulture)) { Offset = token.Offset };
            case TokenKind.LeftParen:
                var inner = ParseOr();
                Expect(TokenKind.RightParen, "')' to close the '(' at offset " + token.Offset);
                return inner;
            case TokenKind.Identifier:
                switch (token.Text)
                {
                    case "true": return new LiteralExpr(true) { Offset = token.Offset };
                    case "false": return new LiteralExpr(false) { Offset = token.Offset };
                    case "null": return new LiteralExpr(null) { Offset = token.Offset };
                }

                if (Peek.Kind == TokenKind.LeftParen)
                {
                    Next();
                    var args = ImmutableArray.CreateBuilder<Expr>();
                    if (Peek.Kind != TokenKind.RightParen)
                    {
                        args.Add(ParseOr());
                        while (Peek.Kind == TokenKind.Comma)
                        {
                            Next();
                            args.Add(ParseOr());
                        }
                    }

                    Expect(TokenKind.RightParen, $"')' to close the call of {token.Text}(");
                    return new CallExpr(token.Text, args.ToImmutable()) { Offset = token.Offset };
                }

                var path = ImmutableArray.CreateBuilder<string>();
                path.Add(token.Text);
                while (Peek.Kind == TokenKind.Dot)
                {
                    Next();
                    var member = Next();
                    if (member.Kind != TokenKind.Identifier)
                    {
                        throw new ExpressionException($"expected a name after '.', got {Describe(member)}", member.Offset);
                    }

                    path.Add(member.Text);
                }

                return new ContextExpr(path.ToImmutable()) { Offset = token.Offset };
            default:
                throw new ExpressionException($"expected a value, a name or '(', got {Describe(token)}", token.Offset);
        }
    }

    private void Expect(TokenKind kind, string what)
    {
        var token = Next();
        if (token.Kind != kind)
        {
            throw new ExpressionException($"expected {what}, got {Describe(token)}", token.Offset);
        }
    }

    private static string Describe(Token token) => token.Kind == TokenKind.End ? "the end of the expression" : $"'{token.Text}'";

    private enum TokenKind
    {
        Identifier,
        String,
        Number,
        Operator,
        LeftParen,
        RightParen,
        Comma,
        Dot,
        End,
    }

    private readonly record struct Token(TokenKind Kind, string Text, int Offset);

    private static List<Token> Tokenize(string text)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            var start = i;
            if (char.IsLetter(c) || c == '_')
            {
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '_' or '-'))
                {
                    i++;
                }

                tokens.Add(new Token(TokenKind.Identifier, text[start..i], start));
            }
            else if (char.IsDigit(c))
            {
                while (i < text.Length && (char.IsDigit(text[i]) || text[i] == '.'))
                {
                    i++;
                }

                var number = text[start..i];
                if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                {
                    throw new ExpressionException($"'{number}' is not a number", start);
                }

                tokens.Add(new Token(TokenKind.Number, number, start));
            }
            else if (c == '\'')
            {
                var value = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= text.Length)
                    {
                        throw new ExpressionException("string is not closed; end it with ' (write '' for a quote inside)", start);
                    }

                    if (text[i] == '\'')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '\'')
                        {
                            value.Append('\'');
                            i += 2;
                            continue;
                        }

                        i++;
                        break;
                    }

                    value.Append(text[i++]);
                }

                tokens.Add(new Token(TokenKind.String, value.ToString(), start));
            }
            else if (c == '"')
            {
                throw new ExpressionException("strings use single quotes, as in GitHub Actions: 'value'", start);
            }
            else
            {
                var two = i + 1 < text.Length ? text.Substring(i, 2) : null;
                if (two is "==" or "!=" or "&&" or "||" or "<=" or ">=")
                {
                    tokens.Add(new Token(TokenKind.Operator, two, start));
                    i += 2;
                    continue;
                }

                i++;
                tokens.Add(c switch
                {
                    '!' or '<' or '>' => new Token(TokenKind.Operator, c.ToString(), start),
                    '(' => new Token(TokenKind.LeftParen, "(", start),
                    ')' => new Token(TokenKind.RightParen, ")", start),
                    ',' => new Token(TokenKind.Comma, ",", start),
                    '.' => new Token(TokenKind.Dot, ".", start),
                    '=' => throw new ExpressionException("'=' is not an operator; compare with ==", start),
                    '&' => throw new ExpressionException("'&' is not an operator; use && for and", start),
                    '|' => throw new ExpressionException("'|' is not an operator; use || for or", start),
                    _ => throw new ExpressionException($"unexpected character '{c}'", start),
                });
            }
        }

        tokens.Add(new Token(TokenKind.End, "", text.Length));
        return tokens;
    }
}
