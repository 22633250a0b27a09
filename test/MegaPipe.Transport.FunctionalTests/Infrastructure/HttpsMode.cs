using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>How a test endpoint gets HTTPS: Kestrel's UseHttps (SslStream) or UseMegaPipeHttps (TLS on the channels).</summary>
public enum HttpsMode
{
    UseHttps,
    UseMegaPipeHttps,
}

public static class HttpsModeExtensions
{
    /// <summary>Applies <paramref name="mode"/> with the same certificate and options either way.</summary>
    public static ListenOptions UseHttps(this ListenOptions listenOptions, HttpsMode mode, X509Certificate2 certificate, Action<HttpsConnectionAdapterOptions>? configure = null)
        => mode == HttpsMode.UseHttps
            ? listenOptions.UseHttps(certificate, options => configure?.Invoke(options))
            : listenOptions.UseMegaPipeHttps(certificate, options => configure?.Invoke(options));

    /// <summary>Applies <paramref name="mode"/> with exactly these options.</summary>
    public static ListenOptions UseHttps(this ListenOptions listenOptions, HttpsMode mode, HttpsConnectionAdapterOptions options)
        => mode == HttpsMode.UseHttps ? listenOptions.UseHttps(options) : listenOptions.UseMegaPipeHttps(options);
}
