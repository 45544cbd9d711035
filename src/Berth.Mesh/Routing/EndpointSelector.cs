using Berth.Mesh.Resilience;
using Microsoft.Extensions.Logging;

namespace Berth.Mesh.Routing;

/// <summary>
/// Endpoint selection for one listener: the version (header-matched split, else a weighted draw), then an endpoint by
/// the balancer among those not ejected, passing active checks, whose breaker admits and not yet tried by this
/// request — falling back to tried ones, then to ejected or unhealthy ones (Envoy's panic mode).
/// </summary>
internal sealed class EndpointSelector(Random random, ILogger logger, string service, string endpoint)
{
    [ThreadStatic]
    private static List<EndpointState>? t_candidates;

    /// <summary>The endpoints a request may go to: a header-matched version, else a weighted draw, else all.</summary>
    public EndpointState[] SelectGroup(RouteSnapshot s, Func<string, string?>? header)
    {
        if (header is not null)
        {
            foreach (var r in s.HeaderRoutes)
            {
                if (r.Members.Length > 0 && string.Equals(header(r.Split.HeaderName!), r.Split.HeaderValue, StringComparison.Ordinal))
                {
                    return r.Members;
                }
            }
        }

        if (s.TotalWeight > 0)
        {
            var draw = random.Next(s.TotalWeight);
            foreach (var r in s.WeightedRoutes)
            {
                if (draw < r.Split.Weight)
                {
                    return r.Members;
                }

                draw -= r.Split.Weight;
            }
        }

        return s.All;
    }

    /// <summary>
    /// Picks an endpoint from <paramref name="group"/> and takes a permit from its breaker. Prefers healthy endpoints
    /// not yet tried by this request; then healthy tried ones; then ejected or actively-unhealthy ones (a version whose
    /// every replica is out still gets traffic rather than none, as Envoy's panic mode). Null when every endpoint's breaker is open.
    /// </summary>
    public EndpointState? Choose(RouteSnapshot s, EndpointState[] group, List<EndpointState>? tried, string? hashKey, out BreakerPermit permit)
    {
        permit = BreakerPermit.Rejected;
        if (group.Length == 0)
        {
            return null;
        }

        var candidates = t_candidates ??= new List<EndpointState>(8);
        try
        {
            for (var pass = 0; pass < 3; pass++)
            {
                candidates.Clear();
                foreach (var e in group)
                {
                    if (pass < 2 && (!e.Health.Passing || IsEjected(s, e)))
                    {
                        continue;
                    }

                    if (pass == 0 && tried is not null && tried.Contains(e))
                    {
                        continue;
                    }

                    if (e.Breaker.MayAdmit)
                    {
                        candidates.Add(e);
                    }
                }

                while (candidates.Count > 0)
                {
                    var pick = s.Balancer.Pick(candidates, hashKey);
                    permit = pick.Breaker.TryEnter();
                    if (permit != BreakerPermit.Rejected)
                    {
                        return pick;
                    }

                    candidates.Remove(pick);
                }
            }

            return null;
        }
        finally
        {
            candidates.Clear();
        }
    }

    private bool IsEjected(RouteSnapshot s, EndpointState e)
    {
        var ejected = s.Outliers.IsEjected(e.Outlier, out var returned);
        if (returned)
        {
            e.Series.Ejected.Set(0);
            Log.Returned(logger, e.ToString(), service, endpoint);
        }

        return ejected;
    }
}
