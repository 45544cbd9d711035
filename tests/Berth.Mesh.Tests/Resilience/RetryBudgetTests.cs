
namespace Berth.Mesh.Tests.Resilience;

public sealed class RetryBudgetTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void TryWithdraw_NoRequests_AllowsOneSecondOfMinimumRateThenStops()
    {
        var budget = new RetryBudget(RetryPolicy.Default, _time);

        Assert.Equal(10, Withdraw(budget, 100));
    }

    [Fact]
    public void TryWithdraw_MinimumRate_RefillsTenPerSecond()
    {
        var budget = new RetryBudget(RetryPolicy.Default, _time);
        Withdraw(budget, 100);

        _time.Advance(TimeSpan.FromMilliseconds(500));

        Assert.Equal(5, Withdraw(budget, 100));
    }

    [Fact]
    public void TryWithdraw_ThousandRequests_AllowsTwentyPercentPlusMinimum()
    {
        var budget = new RetryBudget(RetryPolicy.Default, _time);
        for (var i = 0; i < 1000; i++)
        {
            budget.RecordRequest();
        }

        Assert.Equal(200 + 10, Withdraw(budget, 1000));
    }

    [Fact]
    public void TryWithdraw_RequestsOlderThanWindow_NoLongerDeposit()
    {
        var budget = new RetryBudget(RetryPolicy.Default, _time);
        for (var i = 0; i < 1000; i++)
        {
            budget.RecordRequest();
        }

        _time.Advance(TimeSpan.FromSeconds(11));

        Assert.Equal(10, Withdraw(budget, 1000));
    }

    [Fact]
    public void TryWithdraw_SustainedOutage_RetriesStayUnderRatioTimesRequestsPlusRate()
    {
        var budget = new RetryBudget(RetryPolicy.Default, _time);
        var requests = 0;
        var retries = 0;
        for (var ms = 0; ms < 60_000; ms += 10)
        {
            // 100 requests/s, each wanting 2 retries.
            budget.RecordRequest();
            requests++;
            retries += Withdraw(budget, 2);
            _time.Advance(TimeSpan.FromMilliseconds(10));
        }

        Assert.InRange(retries, (int)(0.2 * requests), (int)((0.2 * requests) + (10 * 61)));
    }

    private static int Withdraw(RetryBudget budget, int wanted)
    {
        var granted = 0;
        for (var i = 0; i < wanted; i++)
        {
            if (budget.TryWithdraw())
            {
                granted++;
            }
        }

        return granted;
    }
}
