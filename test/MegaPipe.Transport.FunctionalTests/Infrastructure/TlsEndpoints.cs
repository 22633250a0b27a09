using System.Net.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>What the application sees of a TLS connection, one line per request (GET /tls).</summary>
public sealed record TlsInfo(string Terminator, string Protocol, string CipherSuite, string HostName, string ApplicationProtocol, string ClientCertificate, string Scheme, string HttpProtocol)
{
    /// <summary>"channel": terminated by the transport (no SslStream); "sslstream": by Kestrel's HTTPS middleware.</summary>
    public const string Channel = "channel";

    public const string SslStream = "sslstream";

    public static TlsInfo Parse(string line)
    {
        string[] f = line.Trim().Split('|');
        Assert.True(f.Length == 8, $"unexpected /tls answer '{line}'");
        return new TlsInfo(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
    }
}

internal static class TlsEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/tls", (HttpContext context) =>
        {
            IFeatureCollection features = context.Features;
            ITlsHandshakeFeature? handshake = features.Get<ITlsHandshakeFeature>();
            string terminator = features.Get<ISslStreamFeature>() is not null ? TlsInfo.SslStream : handshake is not null ? TlsInfo.Channel : "none";
            string alpn = features.Get<ITlsApplicationProtocolFeature>() is { } protocol ? System.Text.Encoding.ASCII.GetString(protocol.ApplicationProtocol.Span) : "";
            return string.Join('|',
                terminator,
                handshake?.Protocol.ToString() ?? "-",
                handshake?.NegotiatedCipherSuite?.ToString() ?? "-",
                handshake?.HostName ?? "-",
                alpn.Length == 0 ? "-" : alpn,
                context.Connection.ClientCertificate?.Subject ?? "-",
                context.Request.Scheme + (context.Request.IsHttps ? "+IsHttps" : ""),
                context.Request.Protocol);
        });
    }
}
