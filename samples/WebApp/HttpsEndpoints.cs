using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

// The sample's HTTPS option: --https_url https://127.0.0.1:5001 (several separated by ';'), with the certificate
// from --cert FILE --key FILE (PEM, as nginx's ssl_certificate / ssl_certificate_key) or, without them, a self-signed
// RSA-2048 certificate for localhost made at start; --ssl_session_tickets off turns resumption off (as nginx's
// directive). --tls channel (the default) terminates TLS on the MegaPipe
// channels (UseMegaPipeHttps); --tls sslstream keeps Kestrel's own UseHttps (SslStream), for comparison. Explicit
// endpoints replace --urls in Kestrel, so the HTTP URLs given with --urls (none by default then) are listened on here.
internal static class HttpsEndpoints
{
    // False when there is no --https_url (the app listens on --urls as usual).
    public static bool Configure(WebApplicationBuilder builder)
    {
        IConfiguration config = builder.Configuration;
        string? httpsUrls = config["https_url"];
        if (string.IsNullOrEmpty(httpsUrls))
        {
            return false;
        }
        string[] httpUrls = (config["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        bool onChannels = (config["tls"] ?? "channel") switch
        {
            "channel" => true,
            "sslstream" => false,
            string other => throw new ArgumentException($"unknown --tls '{other}': use channel or sslstream"),
        };
        string? certificatePath = config["cert"];
        string? keyPath = config["key"];
        if ((certificatePath is null) != (keyPath is null))
        {
            throw new ArgumentException("--cert and --key go together (PEM certificate and private key files)");
        }
        bool tickets = (config["ssl_session_tickets"] ?? "on") switch
        {
            "on" => true,
            "off" => false,
            string other => throw new ArgumentException($"unknown --ssl_session_tickets '{other}': use on or off"),
        };
        X509Certificate2 certificate = certificatePath is null
            ? CreateSelfSigned()
            : X509Certificate2.CreateFromPemFile(Path.GetFullPath(certificatePath), Path.GetFullPath(keyPath!));
        // The --urls are listened on below with the HTTPS ones; left as well, Kestrel would warn that it overrides them.
        // Not "": the web host reads an empty urls setting as unset and falls back to the command line's --urls.
        // ";" is set and names no address.
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, ";");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (string url in httpsUrls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                Listen(kestrel, url, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    var https = new HttpsConnectionAdapterOptions { ServerCertificate = certificate };
                    if (onChannels)
                    {
                        // nginx's ssl_session_tickets: TLS 1.3 and TLS 1.2 session tickets (resumption) on or off.
                        listen.UseMegaPipeHttps(https, tls => tls.SessionTickets = tickets);
                    }
                    else
                    {
                        // SslStream resumes TLS 1.3 sessions on its own; for a like-for-like "off", as the channels.
                        if (!tickets)
                        {
                            https.OnAuthenticate = static (_, ssl) => ssl.AllowTlsResume = false;
                        }
                        listen.UseHttps(https);
                    }
                });
            }
            foreach (string url in httpUrls)
            {
                Listen(kestrel, url, _ => { });
            }
        });
        return true;
    }

    private static void Listen(KestrelServerOptions kestrel, string url, Action<ListenOptions> configure)
    {
        BindingAddress address = BindingAddress.Parse(url);
        if (address.Host is "localhost")
        {
            kestrel.ListenLocalhost(address.Port, configure);
        }
        else if (address.Host is "*" or "+" or "0.0.0.0" or "[::]")
        {
            kestrel.ListenAnyIP(address.Port, configure);
        }
        else
        {
            kestrel.Listen(IPAddress.Parse(address.Host.Trim('[', ']')), address.Port, configure);
        }
    }

    private static X509Certificate2 CreateSelfSigned()
    {
        using RSA key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        X509Certificate2 certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(30));
        Console.WriteLine($"WebApp: HTTPS with a self-signed certificate for localhost (SHA-256 {certificate.GetCertHashString(HashAlgorithmName.SHA256)}); pass --cert and --key to use your own.");
        return certificate;
    }
}
