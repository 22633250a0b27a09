// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace MegaPipe.Transport.Internal;

// Kestrel's HttpsConnectionAdapterOptions (what UseHttps takes) as the TLS engine's TlsServerOptions, with the same
// meaning: a selector replaces the certificate (Kestrel ignores ServerCertificate when there is one), ALPN follows the
// endpoint's protocols (h2 before http/1.1), client certificate modes map one to one, CheckCertificateRevocation means
// online revocation checks. What only SslStream can do is reported instead of mapped.
internal static class HttpsOptionsMapping
{
    // Server authentication (RFC 5280 extended key usage), which Kestrel requires of a server certificate.
    private const string ServerAuthenticationOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>Why these options need Kestrel's SslStream, or <see langword="null"/> when the channels can serve them.</summary>
    public static string? WhyNotSupported(HttpsConnectionAdapterOptions options)
    {
        if (options.OnAuthenticate is not null)
        {
            return "HttpsConnectionAdapterOptions.OnAuthenticate configures an SslStream, which the channels do not use";
        }
        if (options.ClientCertificateMode == ClientCertificateMode.DelayCertificate)
        {
            return "ClientCertificateMode.DelayCertificate asks for the certificate by renegotiation, which the channels refuse";
        }
#pragma warning disable CS0618 // still settable on the options: an endpoint that sets it must keep working
        if (options.TlsClientHelloBytesCallback is not null)
        {
            return "HttpsConnectionAdapterOptions.TlsClientHelloBytesCallback is an SslStream feature";
        }
#pragma warning restore CS0618
        return null;
    }

    public static TlsServerOptions ToTlsServerOptions(HttpsConnectionAdapterOptions options, HttpProtocols protocols)
    {
        var tls = new TlsServerOptions
        {
            ClientCertificateMode = options.ClientCertificateMode switch
            {
                ClientCertificateMode.AllowCertificate => TlsClientCertificateMode.AllowCertificate,
                ClientCertificateMode.RequireCertificate => TlsClientCertificateMode.RequireCertificate,
                _ => TlsClientCertificateMode.NoCertificate,
            },
            ClientCertificateValidation = options.ClientCertificateValidation,
            ClientCertificateRevocationMode = options.CheckCertificateRevocation ? X509RevocationMode.Online : X509RevocationMode.NoCheck,
            SslProtocols = options.SslProtocols,
            ApplicationProtocols = ApplicationProtocols(protocols),
        };
        if (options.ServerCertificateSelector is { } selector)
        {
            // The connection is the session's State: the selector gets it as UseHttps's does.
            tls.ServerCertificateSelector = (state, hostName) =>
            {
                X509Certificate2? certificate = selector(state as ConnectionContext, hostName);
                if (certificate is not null)
                {
                    EnsureAllowedForServerAuthentication(certificate);
                }
                return certificate;
            };
        }
        else
        {
            tls.ServerCertificate = options.ServerCertificate;
            tls.ServerCertificateChain = options.ServerCertificateChain;
        }
        return tls;
    }

    // ALPN in Kestrel's order: HTTP/2 first when the endpoint speaks it, then HTTP/1.1.
    public static List<SslApplicationProtocol> ApplicationProtocols(HttpProtocols protocols)
    {
        var list = new List<SslApplicationProtocol>(2);
        if ((protocols & HttpProtocols.Http2) != 0)
        {
            list.Add(SslApplicationProtocol.Http2);
        }
        if ((protocols & HttpProtocols.Http1) != 0)
        {
            list.Add(SslApplicationProtocol.Http11);
        }
        return list;
    }

    // As Kestrel: a certificate with an extended key usage extension must allow server authentication. Checked for
    // each certificate a selector returns (Kestrel's own middleware checked the fixed certificate at startup).
    public static void EnsureAllowedForServerAuthentication(X509Certificate2 certificate)
    {
        foreach (X509Extension extension in certificate.Extensions)
        {
            if (extension is X509EnhancedKeyUsageExtension usage)
            {
                foreach (System.Security.Cryptography.Oid oid in usage.EnhancedKeyUsages)
                {
                    if (oid.Value == ServerAuthenticationOid)
                    {
                        return;
                    }
                }
                throw new InvalidOperationException($"The certificate {certificate.Thumbprint} is not valid for server authentication: its extended key usage does not include server authentication ({ServerAuthenticationOid}).");
            }
        }
    }

    // For the log line that says what an endpoint serves.
    public static string DescribeCertificate(HttpsConnectionAdapterOptions options)
        => options.ServerCertificateSelector is not null
            ? "certificates chosen by ServerCertificateSelector"
            : $"certificate '{options.ServerCertificate?.Subject}' ({options.ServerCertificate?.GetKeyAlgorithmDescription()})";

    private static string GetKeyAlgorithmDescription(this X509Certificate2 certificate)
    {
        using var rsa = certificate.GetRSAPublicKey();
        if (rsa is not null)
        {
            return $"RSA-{rsa.KeySize}";
        }
        using var ecdsa = certificate.GetECDsaPublicKey();
        return ecdsa is not null ? $"ECDSA P-{ecdsa.KeySize}" : certificate.PublicKey.Oid.FriendlyName ?? "unknown key";
    }
}
