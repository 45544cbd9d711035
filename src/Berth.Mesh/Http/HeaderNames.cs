using System.Text;

namespace Berth.Mesh.Http;

/// <summary>Header names the mesh parses from upstream responses, as shared strings so a response head allocates only its values.</summary>
internal static class HeaderNames
{
    private static readonly string[] Known =
    [
        "Content-Type", "Date", "Server", "Cache-Control", "ETag", "Last-Modified", "Location", "Set-Cookie", "Vary",
        "Expires", "Content-Encoding", "Content-Language", "Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Allow",
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Grpc-Status", "Grpc-Message",
        "WWW-Authenticate", "Content-Disposition", "Pragma", "Retry-After", "Link", "X-Content-Type-Options",
    ];

    public static string Intern(ReadOnlySpan<byte> name)
    {
        foreach (var k in Known)
        {
            if (k.Length == name.Length && Ascii.EqualsIgnoreCase(name, k))
            {
                return k;
            }
        }

        return Encoding.Latin1.GetString(name);
    }
}
