// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>
/// HTTPS terminated on the MegaPipe channels: <c>UseMegaPipeHttps(...)</c> in place of Kestrel's <c>UseHttps(...)</c>,
/// with the same overloads and options. The handshake and the record layer run on the connection's channel thread
/// (OpenSSL 3 with memory BIOs), and Kestrel gets the connection, already decrypted, once the handshake completed.
/// </summary>
/// <remarks>
/// <para>Each call also applies Kestrel's <c>UseHttps</c> with the same options: it makes the endpoint an HTTPS one for
/// Kestrel (https addresses, HTTP/2 over TLS), passes the channels' TLS connections through untouched, and serves any
/// other connection with SslStream. So the endpoint falls back to Kestrel's SslStream, logging why once, when it is
/// not served by the MegaPipe transport, when OpenSSL 3 cannot be loaded, or when the options need SslStream
/// (<see cref="HttpsConnectionAdapterOptions.OnAuthenticate"/>, <see cref="ClientCertificateMode.DelayCertificate"/>).</para>
/// <para>Only TLS 1.2 and 1.3 are served (<see cref="HttpsConnectionAdapterOptions.SslProtocols"/> naming anything older
/// stops the server at startup); TLS 1.2 only with ECDHE and AEAD ciphers; no renegotiation; session tickets on.
/// The certificate selector, the client certificate validation callback and online revocation checks
/// (<see cref="HttpsConnectionAdapterOptions.CheckCertificateRevocation"/> with client certificates) run on the channel
/// thread and must not block.</para>
/// </remarks>
public static class ListenOptionsMegaPipeHttpsExtensions
{
    /// <summary>HTTPS on the channels with Kestrel's default certificate (configuration or the development certificate).</summary>
    /// <exception cref="InvalidOperationException">No default certificate is configured.</exception>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions) => listenOptions.UseMegaPipeHttps(_ => { });

    /// <summary>HTTPS on the channels with a certificate file (relative to the content root), as <c>UseHttps(fileName)</c>.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, string fileName)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        return listenOptions.UseMegaPipeHttps(X509CertificateLoader.LoadCertificateFromFile(ContentPath(listenOptions, fileName)));
    }

    /// <summary>HTTPS on the channels with a PKCS#12 file (relative to the content root) and its password, as <c>UseHttps(fileName, password)</c>.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, string fileName, string? password)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        return listenOptions.UseMegaPipeHttps(X509CertificateLoader.LoadPkcs12FromFile(ContentPath(listenOptions, fileName), password));
    }

    /// <summary>HTTPS on the channels with a PKCS#12 file, its password and further options.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, string fileName, string? password, Action<HttpsConnectionAdapterOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        return listenOptions.UseMegaPipeHttps(X509CertificateLoader.LoadPkcs12FromFile(ContentPath(listenOptions, fileName), password), configureOptions);
    }

    /// <summary>HTTPS on the channels with a certificate from a certificate store, as <c>UseHttps(storeName, subject)</c>.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, StoreName storeName, string subject)
        => listenOptions.UseMegaPipeHttps(storeName, subject, allowInvalid: false, StoreLocation.CurrentUser, _ => { });

    /// <summary>HTTPS on the channels with a certificate from a certificate store and further options.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, StoreName storeName, string subject, bool allowInvalid, StoreLocation location, Action<HttpsConnectionAdapterOptions> configureOptions)
        => listenOptions.UseMegaPipeHttps(CertificateLoader.LoadFromStoreCert(subject, storeName.ToString(), location, allowInvalid), configureOptions);

    /// <summary>HTTPS on the channels with <paramref name="serverCertificate"/> (RSA or ECDSA, with its private key).</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, X509Certificate2 serverCertificate)
    {
        ArgumentNullException.ThrowIfNull(serverCertificate);
        return listenOptions.UseMegaPipeHttps(options => options.ServerCertificate = serverCertificate);
    }

    /// <summary>HTTPS on the channels with <paramref name="serverCertificate"/> and further options.</summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, X509Certificate2 serverCertificate, Action<HttpsConnectionAdapterOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(serverCertificate);
        ArgumentNullException.ThrowIfNull(configureOptions);
        return listenOptions.UseMegaPipeHttps(options =>
        {
            options.ServerCertificate = serverCertificate;
            configureOptions(options);
        });
    }

    /// <summary>
    /// HTTPS on the channels with the options <paramref name="configureOptions"/> sets, starting from Kestrel's HTTPS
    /// defaults (<c>ConfigureHttpsDefaults</c>, configuration) and falling back to its default certificate, as
    /// <c>UseHttps(configureOptions)</c>.
    /// </summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, Action<HttpsConnectionAdapterOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        ArgumentNullException.ThrowIfNull(configureOptions);
        MegaPipeHttpsEndpoint endpoint = Register(listenOptions);
        // Kestrel fills in its defaults around the callback; the instance it ends up with is the one to mirror.
        HttpsConnectionAdapterOptions? configured = null;
        listenOptions.UseHttps(options =>
        {
            configureOptions(options);
            configured = options;
        });
        endpoint.SetOptions(configured!);
        return listenOptions;
    }

    /// <summary>
    /// HTTPS on the channels with exactly <paramref name="httpsOptions"/> (no defaults applied), as
    /// <c>UseHttps(httpsOptions)</c>. Changes to the options after the server started have no effect.
    /// </summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, HttpsConnectionAdapterOptions httpsOptions)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        ArgumentNullException.ThrowIfNull(httpsOptions);
        MegaPipeHttpsEndpoint endpoint = Register(listenOptions);
        listenOptions.UseHttps(httpsOptions);
        endpoint.SetOptions(httpsOptions);
        return listenOptions;
    }

    /// <summary>
    /// HTTPS on the channels with exactly <paramref name="httpsOptions"/>, and <paramref name="configureTls"/> adjusting
    /// what the TLS engine is built from beyond them (session tickets and their rotation, TLS 1.3 tickets per
    /// handshake: see <see cref="TlsServerOptions"/>). It runs when the endpoint binds, after the mapping of
    /// <paramref name="httpsOptions"/>; on the SslStream fallback it has no effect.
    /// </summary>
    public static ListenOptions UseMegaPipeHttps(this ListenOptions listenOptions, HttpsConnectionAdapterOptions httpsOptions, Action<TlsServerOptions> configureTls)
    {
        ArgumentNullException.ThrowIfNull(configureTls);
        listenOptions.UseMegaPipeHttps(httpsOptions);
        listenOptions.ApplicationServices.GetService<HttpsEndpointRegistry>()?.Find(listenOptions.EndPoint)?.SetEngineConfiguration(configureTls);
        return listenOptions;
    }

    /// <summary>
    /// HTTPS on the channels with a PEM certificate file and a PEM private key file, as nginx's <c>ssl_certificate</c>
    /// and <c>ssl_certificate_key</c>: the certificate file holds the leaf and then any intermediates (sent as the
    /// chain); the key is RSA or EC (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with <paramref name="keyPassword"/>).
    /// Relative paths are relative to the content root.
    /// </summary>
    /// <exception cref="InvalidOperationException">The key does not match the certificate (the message names both files).</exception>
    /// <exception cref="ArgumentException">A file holds no certificate or no readable private key.</exception>
    public static ListenOptions UseMegaPipeHttpsFromPem(this ListenOptions listenOptions, string certificatePath, string keyPath, string? keyPassword = null, Action<HttpsConnectionAdapterOptions>? configureOptions = null)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        string certificateFile = ContentPath(listenOptions, certificatePath);
        string keyFile = ContentPath(listenOptions, keyPath);
        TlsServerOptions pem = new TlsServerOptions().UsePemFiles(certificateFile, keyFile, keyPassword);
        X509Certificate2 leaf = pem.ServerCertificate!;
        X509Certificate2 withKey;
        try
        {
            withKey = pem.ServerPrivateKey switch
            {
                RSA rsa => leaf.CopyWithPrivateKey(rsa),
                ECDsa ecdsa => leaf.CopyWithPrivateKey(ecdsa),
                _ => throw new ArgumentException($"The file '{keyFile}' holds an unsupported key type.", nameof(keyPath)),
            };
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException && pem.ServerPrivateKey is RSA or ECDsa)
        {
            throw new InvalidOperationException($"The private key in '{keyFile}' does not match the certificate '{leaf.Subject}' in '{certificateFile}': {e.Message}", e);
        }
        finally
        {
            pem.ServerPrivateKey?.Dispose();
        }
        X509Certificate2Collection? chain = pem.ServerCertificateChain;
        return listenOptions.UseMegaPipeHttps(options =>
        {
            options.ServerCertificate = withKey;
            options.ServerCertificateChain = chain;
            configureOptions?.Invoke(options);
        });
    }

    // The endpoint's entry, found by the transport when Kestrel binds it, and the middleware that logs a fallback.
    // Added before Kestrel's HTTPS middleware, so it sees each connection first.
    private static MegaPipeHttpsEndpoint Register(ListenOptions listenOptions)
    {
        IServiceProvider services = listenOptions.ApplicationServices;
        HttpsEndpointRegistry? registry = services.GetService<HttpsEndpointRegistry>();
        ILogger logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("MegaPipe.Transport");
        var endpoint = new MegaPipeHttpsEndpoint(listenOptions, registry, logger);
        listenOptions.Use(endpoint.BuildMiddleware);
        registry?.Add(endpoint);
        return endpoint;
    }

    private static string ContentPath(ListenOptions listenOptions, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        IHostEnvironment? environment = listenOptions.ApplicationServices.GetService<IHostEnvironment>();
        return environment is null ? Path.GetFullPath(path) : Path.Combine(environment.ContentRootPath, path);
    }
}
