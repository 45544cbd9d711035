using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Berth.Analyzers.Tests;

/// <summary>BERTH0001 on real compilations (the runtime's own assemblies as references), as the build runs it.</summary>
public sealed class EnumSwitchDefaultArmAnalyzerTests
{
    private const string Enum = "namespace Berth.Sample; public enum Color { Red, Green, Blue }\n";

    private static async Task<ImmutableArray<Diagnostic>> AnalyzeAsync(string code)
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator).Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Berth.Sample", [CSharpSyntaxTree.ParseText(Enum + code)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, specificDiagnosticOptions: [new("CS8524", ReportDiagnostic.Suppress)]));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        return await compilation.WithAnalyzers([new EnumSwitchDefaultArmAnalyzer()]).GetAnalyzerDiagnosticsAsync();
    }

    [Fact]
    public async Task Analyze_DiscardArmOnBerthEnum_ReportsItWithTheMembersItStandsFor()
    {
        var diagnostics = await AnalyzeAsync("public static class C { public static int F(Color c) => c switch { Color.Red => 1, _ => 0 }; }");

        var d = Assert.Single(diagnostics);
        Assert.Equal("BERTH0001", d.Id);
        Assert.Equal("_ => 0", d.Location.SourceTree!.ToString()[d.Location.SourceSpan.Start..d.Location.SourceSpan.End]);
        Assert.Equal("The switch on Color has a catch-all arm; list the members it stands for (Green, Blue) instead, so that the compiler flags a member added later (CS8509)", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Analyze_VarArmAfterEveryMember_SaysToRemoveIt()
    {
        var diagnostics = await AnalyzeAsync("public static class C { public static int F(Color c) => c switch { Color.Red or Color.Green => 1, Color.Blue => 3, var x => 0 }; }");

        Assert.Contains("every member is listed already: remove it", Assert.Single(diagnostics).GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Analyze_ExhaustiveGuardedOrForeignEnumSwitches_ReportNothing()
    {
        var diagnostics = await AnalyzeAsync("""
            public static class C
            {
                public static int Listed(Color c) => c switch { Color.Red => 1, Color.Green => 2, Color.Blue => 3 };
                public static int Guarded(Color c, bool b) => c switch { Color.Red => 1, Color.Green => 2, Color.Blue => 3, _ when b => 4 };
                public static int Framework(System.DayOfWeek d) => d switch { System.DayOfWeek.Monday => 1, _ => 0 };
                public static int Text(string s) => s switch { "a" => 1, _ => 0 };
            }
            """);

        Assert.Empty(diagnostics);
    }
}
