using System.Xml;
using System.Xml.Linq;

namespace Berth.Pipelines.Steps;

/// <summary>Counts from TRX (dotnet test --logger trx) and JUnit XML files.</summary>
public sealed record TestSummary(int Passed, int Failed, int Skipped, IReadOnlyList<string> FailedTests)
{
    public static readonly TestSummary Empty = new(0, 0, 0, []);

    public int Total => Passed + Failed + Skipped;

    public TestSummary Add(TestSummary other) =>
        new(Passed + other.Passed, Failed + other.Failed, Skipped + other.Skipped, [.. FailedTests, .. other.FailedTests]);

    public override string ToString() => $"{Passed} passed, {Failed} failed, {Skipped} skipped";
}

/// <summary>Reads test result files; the format is told by the root element, not the extension.</summary>
public static class TestResults
{
    public static TestSummary Read(string path)
    {
        XDocument document;
        try
        {
            document = XDocument.Load(path);
        }
        catch (XmlException e)
        {
            throw new Execution.StepFailedException($"test results {path} are not valid XML: {e.Message}");
        }

        var root = document.Root!;
        return root.Name.LocalName switch
        {
            "TestRun" => ReadTrx(root),
            "testsuites" or "testsuite" => ReadJUnit(root),
            _ => throw new Execution.StepFailedException($"test results {path}: root element <{root.Name.LocalName}> is neither TRX <TestRun> nor JUnit <testsuites>/<testsuite>"),
        };
    }

    private static TestSummary ReadTrx(XElement root)
    {
        int passed = 0, failed = 0, skipped = 0;
        var failedTests = new List<string>();
        foreach (var result in root.Descendants().Where(e => e.Name.LocalName == "UnitTestResult"))
        {
            var outcome = (string?)result.Attribute("outcome") ?? "";
            switch (outcome)
            {
                case "Passed":
                    passed++;
                    break;
                case "Failed" or "Error" or "Timeout" or "Aborted":
                    failed++;
                    failedTests.Add((string?)result.Attribute("testName") ?? "?");
                    break;
                default:
                    skipped++;
                    break;
            }
        }

        return new TestSummary(passed, failed, skipped, failedTests);
    }

    private static TestSummary ReadJUnit(XElement root)
    {
        int passed = 0, failed = 0, skipped = 0;
        var failedTests = new List<string>();
        var cases = root.Name.LocalName == "testcase" ? [root] : root.Descendants("testcase");
        foreach (var testCase in cases)
        {
            if (testCase.Element("failure") is not null || testCase.Element("error") is not null)
            {
                failed++;
                var className = (string?)testCase.Attribute("classname");
                var name = (string?)testCase.Attribute("name") ?? "?";
                failedTests.Add(className is null ? name : $"{className}.{name}");
            }
            else if (testCase.Element("skipped") is not null)
            {
                skipped++;
            }
            else
            {
                passed++;
            }
        }

        return new TestSummary(passed, failed, skipped, failedTests);
    }
}
