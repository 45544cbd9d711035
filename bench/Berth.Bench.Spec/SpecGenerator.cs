using System.Globalization;
using System.Text;

namespace Berth.Bench.Spec;

/// <summary>Writes large specs shaped like real ones: every service with endpoints, env, resources, probes, an update
/// strategy and a few dependencies on earlier services (so the cycle check has a real graph to walk).</summary>
internal static class SpecGenerator
{
    public static string BerthYaml(int services)
    {
        var sb = new StringBuilder("name: big\nservices:\n");
        for (var i = 0; i < services; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"""
                  svc-{i}:
                    run: [dotnet, app/out/App.dll, svc-{i}]
                    replicas: {1 + i % 3}
                    environment:
                      LOG_LEVEL: info
                      SERVICE_INDEX: "{i}"
                      UPSTREAM: http://svc-{Math.Max(0, i - 1)}
                      REGION: ${"{"}REGION:-local{"}"}
                    endpoints:
                      http: {10000 + i}
                    resources:
                      requests: {"{"}cpu: 50m, memory: 64Mi{"}"}
                      limits: {"{"}cpu: 500m, memory: 256Mi{"}"}
                    probes:
                      readiness: {"{"}http: /healthz, period: 5s, timeout: 1s{"}"}
                      liveness: {"{"}http: /healthz, period: 10s, failure_threshold: 3{"}"}
                    update: {"{"}max_surge: 25%, max_unavailable: 0{"}"}
                    mesh:
                      timeout: 10s
                      retries: {"{"}attempts: 2{"}"}

                """);
            if (i > 0)
            {
                sb.Append("    depends_on:\n");
                for (var d = Math.Max(0, i - 3); d < i; d++)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"      svc-{d}: healthy\n");
                }
            }
        }

        return sb.ToString();
    }

    public static string ComposeYaml(int services)
    {
        var sb = new StringBuilder("services:\n");
        for (var i = 0; i < services; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"""
                  svc-{i}:
                    image: registry.local/app:${"{"}TAG:-1.0{"}"}
                    command: ["serve", "--name", "svc-{i}"]
                    environment:
                      - LOG_LEVEL=info
                      - SERVICE_INDEX={i}
                    ports:
                      - "127.0.0.1:{20000 + i}:8080"
                    healthcheck:
                      test: ["CMD", "wget", "-qO-", "http://localhost:8080/healthz"]
                      interval: 5s
                      retries: 3
                    restart: unless-stopped
                    deploy:
                      replicas: {1 + i % 3}
                      resources:
                        limits: {"{"}cpus: '0.5', memory: 256M{"}"}
                        reservations: {"{"}cpus: '0.05', memory: 64M{"}"}

                """);
            if (i > 0)
            {
                sb.Append("    depends_on:\n");
                for (var d = Math.Max(0, i - 3); d < i; d++)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"      svc-{d}:\n        condition: service_healthy\n");
                }
            }
        }

        return sb.ToString();
    }
}
