using System.Collections.Immutable;
using System.Text;

namespace Berth.Pipelines.Expressions;

/// <summary>A parsed <c>${{ ... }}</c> / <c>if:</c> expression, in GitHub Actions' syntax.</summary>
public abstract record Expr
{
    /// <summary>Offset of this node in the expression text, for error positions.</summary>
    public int Offset { get; init; }
}

/// <summary><c>null</c>, <c>true</c>/<c>false</c>, a number (double) or a string.</summary>
public sealed record LiteralExpr(object? Value) : Expr;

/// <summary>A context name at the root of a reference: <c>env</c>, <c>github</c>, <c>matrix</c>, <c>branch</c>, …</summary>
public sealed record ContextExpr(string Name) : Expr
{
    public override string ToString() => Name;
}

/// <summary><c>target.name</c>: a property, looked up ignoring case.</summary>
public sealed record MemberExpr(Expr Target, string Name) : Expr;

/// <summary><c>target[index]</c>: an array element by number or an object property by string.</summary>
public sealed record IndexExpr(Expr Target, Expr Index) : Expr;

/// <summary><c>target.*</c> or <c>target[*]</c>: the values of an object, or the elements of an array, as an array.</summary>
public sealed record FilterExpr(Expr Target) : Expr;

public sealed record NotExpr(Expr Operand) : Expr;

/// <summary><c>a &amp;&amp; b &amp;&amp; …</c> or <c>a || b || …</c>: one node per chain, so a long chain is evaluated in a loop, once per operand.</summary>
public sealed record LogicalExpr(bool IsAnd, ImmutableArray<Expr> Operands) : Expr;

/// <summary><c>a == b != c</c> or <c>a &lt; b &lt;= c</c>: left to right, one node per chain.</summary>
public sealed record CompareExpr(Expr First, ImmutableArray<(string Operator, Expr Operand)> Rest) : Expr;

/// <summary>A function call; <see cref="Function"/> is the name as written (looked up ignoring case).</summary>
public sealed record CallExpr(string Function, ImmutableArray<Expr> Arguments) : Expr;

/// <summary>A syntax or validation error at an offset in the expression text.</summary>
public sealed class ExpressionException(string message, int offset) : Exception(message)
{
    public int Offset { get; } = offset;
}

/// <summary>
/// Parser of GitHub Actions expressions. Precedence, highest first, as GitHub documents its operators:
/// <c>( )</c>, <c>[ ]</c>, <c>.</c>, <c>!</c>, <c>&lt; &lt;= &gt; &gt;=</c>, <c>== !=</c>, <c>&amp;&amp;</c>, <c>||</c>.
/// Chains of one operator become one node, so neither parsing nor evaluation recurses per term; nesting
/// (parentheses, brackets, calls, <c>!</c>) deeper than <see cref="MaxDepth"/> is rejected, as GitHub does.
/// </summary>
public sealed class ExpressionParser
{
    /// <summary>Deepest nesting accepted: 50, as GitHub Actions' expression parser.</summary>
    public const int MaxDepth = 50;

    // Tokens are read as the parser goes (one, sometimes two, ahead): no token list for a long expression.
    private readonly IEnumerator<Token> _lexer;
    private Token _current;
    private Token? _second;
    private int _depth;

    private ExpressionParser(string text)
    {
        _lexer = Lexer.Tokenize(text).GetEnumerator();
        _current = Read();
    }

    public static Expr Parse(string text)
    {
        var parser = new ExpressionParser(text);
        if (parser.Peek.Kind == TokenKind.End)
        {
            throw new ExpressionException("empty expression; write a condition such as success() or env.DEPLOY == 'true'", 0);
        }

        var expr = parser.ParseOr();
        var next = parser.Peek;
        if (next.Kind != TokenKind.End)
        {
            throw new ExpressionException($"unexpected {Describe(next)} after a complete expression; join conditions with && or ||", next.Offset);
        }

        return expr;
    }

    private Token Peek => _current;

    /// <summary>The token after <see cref="Peek"/>.</summary>
    private Token PeekSecond => _second ??= Read();

    private Token Next()
    {
        var token = _current;
        if (token.Kind != TokenKind.End)
        {
            _current = _second ?? Read();
            _second = null;
        }

        return token;
    }

    private Token Read() => _lexer.MoveNext() ? _lexer.Current : new Token(TokenKind.End, "", int.MaxValue);

    private bool PeekOperator(string op) => Peek.Kind == TokenKind.Operator && Peek.Text == op;

    private void Enter(int offset)
    {
        if (++_depth > MaxDepth)
        {
            throw new ExpressionException($"the expression nests deeper than {MaxDepth} levels (parentheses, brackets, calls and '!'), as GitHub Actions allows; split it into steps or env values", offset);
        }
    }

    private void Leave() => _depth--;

    private Expr ParseOr() => ParseLogical(isAnd: false);

    private Expr ParseLogical(bool isAnd)
    {
        var op = isAnd ? "&&" : "||";
        var first = isAnd ? ParseEquality() : ParseLogical(isAnd: true);
        if (!PeekOperator(op))
        {
            return first;
        }

        var operands = ImmutableArray.CreateBuilder<Expr>();
        operands.Add(first);
        var offset = Peek.Offset;
        while (PeekOperator(op))
        {
            Next();
            operands.Add(isAnd ? ParseEquality() : ParseLogical(isAnd: true));
        }

        return new LogicalExpr(isAnd, operands.ToImmutable()) { Offset = offset };
    }

    private Expr ParseEquality() => ParseChain(equality: true);

    private Expr ParseComparison() => ParseChain(equality: false);

    private bool PeekChainOperator(bool equality) =>
        Peek.Kind == TokenKind.Operator && (equality ? Peek.Text is "==" or "!=" : Peek.Text is "<" or "<=" or ">" or ">=");

    private Expr ParseChain(bool equality)
    {
        var first = equality ? ParseComparison() : ParseUnary();
        if (!PeekChainOperator(equality))
        {
            return first;
        }

        var rest = ImmutableArray.CreateBuilder<(string, Expr)>();
        var offset = Peek.Offset;
        while (PeekChainOperator(equality))
        {
            var op = Next();
            rest.Add((op.Text, equality ? ParseComparison() : ParseUnary()));
        }

        return new CompareExpr(first, rest.ToImmutable()) { Offset = offset };
    }

    private Expr ParseUnary()
    {
        if (!PeekOperator("!"))
        {
            return ParsePostfix();
        }

        // A run of '!' is counted as nesting, but read in a loop: 100,000 of them stop at the limit, not the stack.
        var nots = new Stack<int>();
        while (PeekOperator("!"))
        {
            var op = Next();
            Enter(op.Offset);
            nots.Push(op.Offset);
        }

        var expr = ParsePostfix();
        while (nots.Count > 0)
        {
            expr = new NotExpr(expr) { Offset = nots.Pop() };
            Leave();
        }

        return expr;
    }

    private Expr ParsePostfix()
    {
        var expr = ParsePrimary();
        while (true)
        {
            if (Peek.Kind == TokenKind.Dot)
            {
                var dot = Next();
                var member = Next();
                if (member.Kind == TokenKind.Operator && member.Text == "*")
                {
                    expr = new FilterExpr(expr) { Offset = dot.Offset };
                }
                else if (member.Kind == TokenKind.Identifier)
                {
                    expr = new MemberExpr(expr, member.Text) { Offset = member.Offset };
                }
                else
                {
                    throw new ExpressionException($"expected a property name or * after '.', got {Describe(member)}", member.Offset);
                }
            }
            else if (Peek.Kind == TokenKind.LeftBracket)
            {
                var bracket = Next();
                Enter(bracket.Offset);
                if (Peek.Kind == TokenKind.Operator && Peek.Text == "*" && PeekSecond.Kind == TokenKind.RightBracket)
                {
                    Next();
                    Next();
                    expr = new FilterExpr(expr) { Offset = bracket.Offset };
                }
                else
                {
                    var index = ParseOr();
                    Expect(TokenKind.RightBracket, "']' to close the '['", bracket);
                    expr = new IndexExpr(expr, index) { Offset = bracket.Offset };
                }

                Leave();
            }
            else
            {
                return expr;
            }
        }
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.String:
                return new LiteralExpr(token.Text) { Offset = token.Offset };
            case TokenKind.Number:
                return new LiteralExpr(token.Number) { Offset = token.Offset };
            case TokenKind.LeftParen:
                Enter(token.Offset);
                var inner = ParseOr();
                Expect(TokenKind.RightParen, "')' to close the '('", token);
                Leave();
                return inner;
            case TokenKind.Identifier:
                switch (token.Text)
                {
                    case "true": return new LiteralExpr(true) { Offset = token.Offset };
                    case "false": return new LiteralExpr(false) { Offset = token.Offset };
                    case "null": return new LiteralExpr(null) { Offset = token.Offset };
                    case "NaN": return new LiteralExpr(double.NaN) { Offset = token.Offset };
                    case "Infinity": return new LiteralExpr(double.PositiveInfinity) { Offset = token.Offset };
                }

                if (Peek.Kind == TokenKind.LeftParen)
                {
                    var open = Next();
                    Enter(open.Offset);
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

                    Expect(TokenKind.RightParen, $"')' to close the call of {token.Text}(", open);
                    Leave();
                    return new CallExpr(token.Text, args.ToImmutable()) { Offset = token.Offset };
                }

                return new ContextExpr(token.Text) { Offset = token.Offset };
            default:
                throw new ExpressionException($"expected a value, a name or '(', got {Describe(token)}", token.Offset);
        }
    }

    private void Expect(TokenKind kind, string what, Token opener)
    {
        var token = Next();
        if (token.Kind != kind)
        {
            throw new ExpressionException($"expected {what} at offset {opener.Offset}, got {Describe(token)}", token.Offset);
        }
    }

    private static string Describe(Token token) => token.Kind == TokenKind.End ? "the end of the expression" : $"'{token.Text}'";

    internal enum TokenKind
    {
        Identifier,
        String,
        Number,
        Operator,
        LeftParen,
        RightParen,
        LeftBracket,
        RightBracket,
        Comma,
        Dot,
        End,
    }

    internal readonly record struct Token(TokenKind Kind, string Text, int Offset, double Number = 0);

    /// <summary>Splits expression text into tokens; also finds where a <c>${{ … }}</c> ends (outside strings).</summary>
    internal static class Lexer
    {
        /// <summary>The tokens, read lazily; the last is <see cref="TokenKind.End"/>.</summary>
        public static IEnumerable<Token> Tokenize(string text)
        {
            var previous = TokenKind.End;
            Token Track(Token token)
            {
                previous = token.Kind;
                return token;
            }

            var names = new Dictionary<string, string>(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
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
                if (StartsNumber(text, i, previous))
                {
                    i = ReadNumberWord(text, i);
                    var word = text[start..i];
                    if (!Values.TryParseNumberLiteral(word, out var number))
                    {
                        throw new ExpressionException($"'{word}' is not a number (write 42, -1.5, 1e3, .5, 0xff, Infinity or NaN)", start);
                    }

                    yield return Track(new Token(TokenKind.Number, word, start, number));
                }
                else if (char.IsLetter(c) || c == '_')
                {
                    while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '_' or '-'))
                    {
                        i++;
                    }

                    // One string per distinct name: a long chain repeats the same few names thousands of times.
                    var span = text.AsSpan(start, i - start);
                    if (!names.TryGetValue(span, out var name))
                    {
                        name = span.ToString();
                        names.Dictionary[name] = name;
                    }

                    yield return Track(new Token(TokenKind.Identifier, name, start));
                }
                else if (c == '\'')
                {
                    i = ReadString(text, i, out var value);
                    yield return Track(new Token(TokenKind.String, value, start));
                }
                else if (c == '"')
                {
                    throw new ExpressionException("strings use single quotes, as in GitHub Actions: 'value'", start);
                }
                else
                {
                    var two = i + 1 < text.Length ? TwoCharOperator(c, text[i + 1]) : null;
                    if (two is not null)
                    {
                        yield return Track(new Token(TokenKind.Operator, two, start));
                        i += 2;
                        continue;
                    }

                    i++;
                    yield return Track(c switch
                    {
                        '!' => new Token(TokenKind.Operator, "!", start),
                        '<' => new Token(TokenKind.Operator, "<", start),
                        '>' => new Token(TokenKind.Operator, ">", start),
                        '*' => new Token(TokenKind.Operator, "*", start),
                        '(' => new Token(TokenKind.LeftParen, "(", start),
                        ')' => new Token(TokenKind.RightParen, ")", start),
                        '[' => new Token(TokenKind.LeftBracket, "[", start),
                        ']' => new Token(TokenKind.RightBracket, "]", start),
                        ',' => new Token(TokenKind.Comma, ",", start),
                        '.' => new Token(TokenKind.Dot, ".", start),
                        '=' => throw new ExpressionException("'=' is not an operator; compare with ==", start),
                        '&' => throw new ExpressionException("'&' is not an operator; use && for and", start),
                        '|' => throw new ExpressionException("'|' is not an operator; use || for or", start),
                        _ => throw new ExpressionException($"unexpected character '{char.ConvertFromUtf32(char.ConvertToUtf32(text, start))}'", start),
                    });
                }
            }

            yield return new Token(TokenKind.End, "", text.Length);
        }

        /// <summary>The operator two characters make, as a constant string (no allocation per token); null when none.</summary>
        private static string? TwoCharOperator(char a, char b) => (a, b) switch
        {
            ('=', '=') => "==",
            ('!', '=') => "!=",
            ('&', '&') => "&&",
            ('|', '|') => "||",
            ('<', '=') => "<=",
            ('>', '=') => ">=",
            _ => null,
        };

        /// <summary>A number starts with a digit, a sign, or a '.' before a digit where no property can follow.</summary>
        private static bool StartsNumber(string text, int i, TokenKind previous)
        {
            var c = text[i];
            if (char.IsAsciiDigit(c))
            {
                return true;
            }

            var afterValue = previous is TokenKind.Identifier or TokenKind.RightParen or TokenKind.RightBracket or TokenKind.String or TokenKind.Number;
            if (c == '.' && !afterValue)
            {
                return i + 1 < text.Length && char.IsAsciiDigit(text[i + 1]);
            }

            if (c is '-' or '+')
            {
                var rest = text.AsSpan(i + 1);
                return rest.Length > 0 && (char.IsAsciiDigit(rest[0]) || (rest[0] == '.' && rest.Length > 1 && char.IsAsciiDigit(rest[1])) || rest.StartsWith("Infinity"));
            }

            return false;
        }

        private static int ReadNumberWord(string text, int i)
        {
            if (text[i] is '-' or '+')
            {
                i++;
            }

            while (i < text.Length)
            {
                var c = text[i];
                if (char.IsAsciiLetterOrDigit(c) || c == '.' || c == '_')
                {
                    i++;
                }
                else if (c is '-' or '+' && (text[i - 1] is 'e' or 'E') && !text.AsSpan(0, i).Contains("0x", StringComparison.OrdinalIgnoreCase))
                {
                    i++; // exponent sign: 1e-3
                }
                else
                {
                    break;
                }
            }

            return i;
        }

        /// <summary>Reads a '…' string ('' is a quote) starting at <paramref name="i"/>; returns the index after it.</summary>
        public static int ReadString(string text, int i, out string value)
        {
            var start = i;
            var builder = new StringBuilder();
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
                        builder.Append('\'');
                        i += 2;
                        continue;
                    }

                    value = builder.ToString();
                    return i + 1;
                }

                builder.Append(text[i++]);
            }
        }

        /// <summary>Index of the <c>}}</c> that closes an expression starting at <paramref name="from"/>, skipping strings; -1 if none.</summary>
        public static int FindClose(string text, int from)
        {
            var i = from;
            while (i < text.Length)
            {
                if (text[i] == '\'')
                {
                    var end = text.IndexOf('\'', i + 1);
                    while (end >= 0 && end + 1 < text.Length && text[end + 1] == '\'')
                    {
                        end = text.IndexOf('\'', end + 2);
                    }

                    if (end < 0)
                    {
                        return -1;
                    }

                    i = end + 1;
                    continue;
                }

                if (text[i] == '}' && i + 1 < text.Length && text[i + 1] == '}')
                {
                    return i;
                }

                i++;
            }

            return -1;
        }
    }
}
