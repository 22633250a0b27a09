using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;

namespace MegaPipe.StaticServer;

/// <summary>
/// HTTPS as nginx's <c>listen ... ssl</c>, <c>ssl_certificate</c> and <c>ssl_certificate_key</c>:
/// <c>--https_url https://0.0.0.0:8443 --cert cert.pem --key key.pem</c>. The URLs become Kestrel configuration
/// endpoints (<c>Kestrel:Endpoints:HttpsN</c> with the PEM files), and <c>MegaPipe:TlsForConfiguredEndpoints</c> puts
/// them on the channels (TLS terminated on the channel thread); <c>--tls sslstream</c> leaves them to Kestrel's SslStream.
/// With HTTPS, plain HTTP is served only on the <c>--urls</c> given (none by default), as nginx listens only where told.
/// </summary>
internal static class HttpsConfiguration
{
    /// <summary>False when there is no <c>--https_url</c>.</summary>
    public static bool Apply(WebApplicationBuilder builder)
    {
        IConfiguration config = builder.Configuration;
        string? httpsUrls = config["https_url"];
        if (string.IsNullOrEmpty(httpsUrls))
        {
            return false;
        }
        string certificate = config["cert"] ?? throw new ArgumentException("--https_url needs --cert FILE (nginx ssl_certificate: the PEM certificate, then its chain)");
        string key = config["key"] ?? throw new ArgumentException("--https_url needs --key FILE (nginx ssl_certificate_key: the PEM private key)");
        bool onChannels = (config["tls"] ?? "channel") switch
        {
            "channel" => true,
            "sslstream" => false,
            string other => throw new ArgumentException($"unknown --tls '{other}': use channel or sslstream"),
        };
        var endpoints = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        string[] https = httpsUrls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = 0; i < https.Length; i++)
        {
            endpoints[$"Kestrel:Endpoints:Https{i}:Url"] = https[i];
            endpoints[$"Kestrel:Endpoints:Https{i}:Certificate:Path"] = Path.GetFullPath(certificate);
            endpoints[$"Kestrel:Endpoints:Https{i}:Certificate:KeyPath"] = Path.GetFullPath(key);
        }
        string[] http = (config["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = 0; i < http.Length; i++)
        {
            endpoints[$"Kestrel:Endpoints:Http{i}:Url"] = http[i];
        }
        if (onChannels)
        {
            endpoints["MegaPipe:TlsForConfiguredEndpoints"] = "true";
        }
        builder.Configuration.AddInMemoryCollection(endpoints);
        // The slim builder leaves HTTPS endpoints of configuration out unless asked.
        builder.WebHost.UseKestrelHttpsConfiguration();
        // --urls are configuration endpoints now; left as addresses too, Kestrel would warn that it overrides them.
        // Not "": the web host reads an empty urls setting as unset and falls back to the command line's --urls.
        // ";" is set and names no address.
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, ";");
        return true;
    }
}
