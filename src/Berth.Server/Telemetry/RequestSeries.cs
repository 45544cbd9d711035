namespace Berth.Server.Telemetry;

/// <summary>One service's requests through the mesh, in one-second buckets over the last hour: count, errors, retries,
/// a latency histogram, and the ejected endpoints and open breakers sampled each second. Fixed size, no allocation per request.</summary>
internal sealed class RequestSeries
{
    /// <summary>Latency bucket upper bounds in milliseconds (the last is everything above).</summary>
    public static readonly double[] BoundsMs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, double.PositiveInfinity];

    private readonly int _size;
    private readonly long[] _second;
    private readonly int[] _count;
    private readonly int[] _errors;
    private readonly int[] _retries;
    private readonly int[] _latency;
    private readonly int[] _ejected;
    private readonly int[] _openBreakers;
    private readonly Lock _lock = new();

    public RequestSeries(int seconds = TelemetryDefaults.RequestHistorySeconds)
    {
        _size = seconds;
        _second = new long[seconds];
        _count = new int[seconds];
        _errors = new int[seconds];
        _retries = new int[seconds];
        _latency = new int[seconds * BoundsMs.Length];
        _ejected = new int[seconds];
        _openBreakers = new int[seconds];
    }

    /// <summary>Counts a request, or <paramref name="weight"/> alike ones (a sampled record standing for those not sent).</summary>
    public void Add(long unixSecond, bool error, int retries, double milliseconds, int weight = 1)
    {
        lock (_lock)
        {
            var i = Slot(unixSecond);
            _count[i] += weight;
            _errors[i] += error ? weight : 0;
            _retries[i] += retries * weight;
            var b = 0;
            while (milliseconds > BoundsMs[b])
            {
                b++;
            }

            _latency[(i * BoundsMs.Length) + b] += weight;
        }
    }

    public void SetGauges(long unixSecond, int ejected, int openBreakers)
    {
        lock (_lock)
        {
            var i = Slot(unixSecond);
            _ejected[i] = ejected;
            _openBreakers[i] = openBreakers;
        }
    }

    /// <summary>Points of <paramref name="step"/> seconds from <paramref name="from"/> to <paramref name="to"/> (unix seconds, inclusive).</summary>
    public List<RequestPoint> Range(long from, long to, int step)
    {
        var points = new List<RequestPoint>();
        var histogram = new int[BoundsMs.Length];
        lock (_lock)
        {
            for (var start = from; start <= to; start += step)
            {
                int count = 0, errors = 0, retries = 0, ejected = 0, open = 0;
                Array.Clear(histogram);
                for (var s = start; s < start + step && s <= to; s++)
                {
                    var i = (int)(s % _size);
                    if (_second[i] != s)
                    {
                        continue;
                    }

                    count += _count[i];
                    errors += _errors[i];
                    retries += _retries[i];
                    ejected = Math.Max(ejected, _ejected[i]);
                    open = Math.Max(open, _openBreakers[i]);
                    for (var b = 0; b < histogram.Length; b++)
                    {
                        histogram[b] += _latency[(i * BoundsMs.Length) + b];
                    }
                }

                points.Add(new RequestPoint(start, (double)count / step, count == 0 ? 0 : (double)errors / count, retries,
                    Percentile(histogram, count, 0.50), Percentile(histogram, count, 0.95), Percentile(histogram, count, 0.99), ejected, open, count));
            }
        }

        return points;
    }

    /// <summary>The upper bound of the bucket holding the q-th request, as Prometheus' histogram_quantile without interpolation
    /// (an overestimate by at most one bucket); above the last finite bound it reports that bound.</summary>
    internal static double Percentile(int[] histogram, int count, double q)
    {
        if (count == 0)
        {
            return 0;
        }

        var rank = Math.Max(1, (int)Math.Ceiling(q * count));
        var seen = 0;
        for (var b = 0; b < histogram.Length; b++)
        {
            seen += histogram[b];
            if (seen >= rank)
            {
                return double.IsInfinity(BoundsMs[b]) ? BoundsMs[^2] : BoundsMs[b];
            }
        }

        return BoundsMs[^2];
    }

    private int Slot(long unixSecond)
    {
        var i = (int)(unixSecond % _size);
        if (_second[i] != unixSecond)
        {
            _second[i] = unixSecond;
            _count[i] = _errors[i] = _retries[i] = _ejected[i] = _openBreakers[i] = 0;
            Array.Clear(_latency, i * BoundsMs.Length, BoundsMs.Length);
        }

        return i;
    }
}

/// <summary>One point of a service's request charts.</summary>
public sealed record RequestPoint(long Time, double Rps, double ErrorRate, int Retries, double P50, double P95, double P99, int Ejected, int OpenBreakers, int Count);
