using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Berth.Analyzers;

/// <summary>BERTH0001: a switch expression over one of Berth's enums has no catch-all arm (<c>_ =&gt;</c> or <c>var x =&gt;</c>).
/// Without one, the compiler's CS8509 flags every switch that misses a member added later; with one, the new member silently
/// takes the default. (CS8524, which would demand an arm for unnamed values, is off in .editorconfig for the same reason.)
/// Enums of other assemblies (the framework's) are not checked: listing every member of those is not ours to keep current.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class EnumSwitchDefaultArmAnalyzer : DiagnosticAnalyzer
{
    public const string Id = "BERTH0001";

    private static readonly DiagnosticDescriptor Rule = new(
        Id,
        "A switch on a Berth enum has a catch-all arm",
        "The switch on {0} has a catch-all arm; {1}, so that the compiler flags a member added later (CS8509)",
        "Design",
        DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(Rule);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterOperationAction(Analyze, OperationKind.SwitchExpression);
    }

    private static void Analyze(OperationAnalysisContext context)
    {
        var operation = (ISwitchExpressionOperation)context.Operation;
        if (operation.Value.Type is not INamedTypeSymbol { TypeKind: TypeKind.Enum } type || !IsBerths(type, context.Compilation))
        {
            return;
        }

        foreach (var arm in operation.Arms)
        {
            if (arm.Guard is null && IsCatchAll(arm.Pattern))
            {
                var listed = new HashSet<object>(operation.Arms.Where(a => a != arm).SelectMany(a => Constants(a.Pattern)));
                var missing = type.GetMembers().OfType<IFieldSymbol>().Where(f => f.HasConstantValue && !listed.Contains(f.ConstantValue!)).Select(f => f.Name).ToList();
                var fix = missing.Count == 0 ? "every member is listed already: remove it" : $"list the members it stands for ({string.Join(", ", missing)}) instead";
                context.ReportDiagnostic(Diagnostic.Create(Rule, arm.Syntax.GetLocation(), type.Name, fix));
            }
        }
    }

    private static bool IsBerths(INamedTypeSymbol type, Compilation compilation) =>
        SymbolEqualityComparer.Default.Equals(type.ContainingAssembly, compilation.Assembly)
        || type.ContainingAssembly.Name.StartsWith("Berth.", System.StringComparison.Ordinal);

    private static bool IsCatchAll(IPatternOperation pattern) => pattern switch
    {
        IDiscardPatternOperation => true,
        IDeclarationPatternOperation { MatchesNull: true } => true, // var x
        _ => false,
    };

    // The enum values a pattern names: A, A or B, not A (counted as naming A: the arm handles it either way).
    private static IEnumerable<object> Constants(IPatternOperation pattern) => pattern switch
    {
        IConstantPatternOperation { Value.ConstantValue: { HasValue: true, Value: { } value } } => new[] { value },
        IBinaryPatternOperation binary => Constants(binary.LeftPattern).Concat(Constants(binary.RightPattern)),
        INegatedPatternOperation negated => Constants(negated.Pattern),
        _ => Enumerable.Empty<object>(),
    };
}
