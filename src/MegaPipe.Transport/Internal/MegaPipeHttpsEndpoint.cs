// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using MegaPipe.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// One UseMegaPipeHttps call: the endpoint's HTTPS options and, once Kestrel builds the endpoint's connection pipeline,
// the TLS context every channel's connections of this endpoint share (one SSL_CTX per certificate configuration).
// Kestrel's own UseHttps middleware stays in the pipeline behind ours: it passes through connections the transport
// already terminated (they carry ITlsConnectionFeature) and does the handshake itself otherwise (the fallback).
internal sealed class MegaPipeHttpsEndpoint : IDisposable
{
    private readonly ListenOptions _listenOptions;
    private readonly HttpsEndpointRegistry? _registry;
    private readonly ILogger _logger;
    // Guards _context and _fallbackReason.
    private readonly Lock _gate = new();
    private HttpsConnectionAdapterOptions? _options;
    // Further settings of the TLS engine (UseMegaPipeHttps with a TlsServerOptions callback), applied after the mapping.
    private Action<TlsServerOptions>? _configureTls;
    private TlsServerContext? _context;
    // Why this endpoint is not terminated on the channels (null while it can be).
    private string? _fallbackReason;
    // The fallback was logged (once per endpoint).
    private int _fallbackLogged;
    private bool _disposed;

    public MegaPipeHttpsEndpoint(ListenOptions listenOptions, HttpsEndpointRegistry? registry, ILogger logger)
    {
        _listenOptions = listenOptions;
        _registry = registry;
        _fallbackReason = registry is null ? "the MegaPipe transport is not in use (UseMegaPipe was not called)" : null;
        _logger = logger;
        // Kestrel's value object: the transport receives this very instance in BindAsync (clones of
        // ListenLocalhost / ListenAnyIP endpoints get new ones, matched by port).
        EndPoint = listenOptions.EndPoint;
        // Kestrel's only ListenOptions subclasses, LocalhostListenOptions and AnyIPListenOptions, bind clones.
        ClonedAtBind = listenOptions.GetType() != typeof(ListenOptions);
    }

    public EndPoint EndPoint { get; }

    // ListenLocalhost / ListenAnyIP: Kestrel binds copies with their own EndPoint objects.
    public bool ClonedAtBind { get; }

    public ILogger Logger => _logger;

    /// <summary>The options Kestrel's UseHttps was given (defaults and the default certificate applied).</summary>
    public HttpsConnectionAdapterOptions Options => _options ?? throw new InvalidOperationException("UseMegaPipeHttps has not finished configuring this endpoint.");

    /// <summary>The handshake deadline the transport enforces, as Kestrel's HttpsConnectionAdapterOptions.HandshakeTimeout.</summary>
    public TimeSpan HandshakeTimeout => Options.HandshakeTimeout;

    public void SetEngineConfiguration(Action<TlsServerOptions> configure) => _configureTls = configure;

    public void SetOptions(HttpsConnectionAdapterOptions options)
    {
        _options = options;
        if (_fallbackReason is null && HttpsOptionsMapping.WhyNotSupported(options) is { } reason)
        {
            lock (_gate)
            {
                _fallbackReason = reason;
            }
        }
    }

    // The first middleware of the endpoint: runs when Kestrel builds the pipeline (right before it binds the endpoint,
    // once per clone of a localhost / any-IP endpoint), then sees each connection before Kestrel's HTTPS middleware.
    public ConnectionDelegate BuildMiddleware(ConnectionDelegate next)
    {
        // Protocols are read here, as Kestrel reads them, so that UseMegaPipeHttps and Protocols can come in any order.
        TryCreateContext();
        return connection =>
        {
            if (connection.Features.Get<ITlsConnectionFeature>() is null)
            {
                LogFallbackOnce(_fallbackReason ?? "the connection did not come through the MegaPipe transport (another transport serves this endpoint)");
            }
            return next(connection);
        };
    }

    /// <summary>
    /// The context the channels terminate this endpoint's TLS with, or <see langword="null"/> when Kestrel's SslStream
    /// does it (the reason is logged once). Throws when the configuration is invalid (for example a private key that
    /// does not match its certificate), so that the server fails at startup.
    /// </summary>
    public TlsServerContext? TryCreateContext()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_context is not null || _fallbackReason is not null)
            {
                if (_fallbackReason is not null)
                {
                    LogFallbackOnce(_fallbackReason);
                }
                return _context;
            }
            if (TlsLibrary.UnavailableReason is { } unavailable)
            {
                _fallbackReason = "OpenSSL 3 is unavailable: " + unavailable;
                _registry?.LogLibraryUnavailableOnce(_logger, unavailable);
                LogFallbackOnce(_fallbackReason);
                return null;
            }
            HttpsConnectionAdapterOptions options = Options;
            HttpProtocols protocols = _listenOptions.Protocols;
            try
            {
                TlsServerOptions tls = HttpsOptionsMapping.ToTlsServerOptions(options, protocols);
                _configureTls?.Invoke(tls);
                _context = new TlsServerContext(tls);
            }
            catch (Exception e) when (e is TlsException or ArgumentException)
            {
                throw new InvalidOperationException($"HTTPS on {_listenOptions.EndPoint} cannot start: {e.Message}", e);
            }
            return _context;
        }
    }

    // The transport bound the endpoint with TLS on its channels (once per bound socket: twice for localhost).
    public void LogOnChannels(EndPoint bound)
    {
        HttpsConnectionAdapterOptions options = Options;
        MegaPipeTlsLog.HttpsOnChannels(_logger, bound, ProtocolsText(_context!), HttpsOptionsMapping.DescribeCertificate(options), options.HandshakeTimeout);
        if (options.CheckCertificateRevocation && options.ClientCertificateMode != ClientCertificateMode.NoCertificate)
        {
            MegaPipeTlsLog.OnlineRevocation(_logger, bound);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            // Live sessions keep their own reference to the native context; new handshakes on them fail.
            _context?.Dispose();
            _context = null;
        }
    }

    private void LogFallbackOnce(string reason)
    {
        if (Interlocked.Exchange(ref _fallbackLogged, 1) == 0)
        {
            MegaPipeTlsLog.HttpsFallback(_logger, _listenOptions.ToString() ?? "(endpoint)", reason);
        }
    }

    private static string ProtocolsText(TlsServerContext context)
        => context.ApplicationProtocols.Count == 0 ? "no ALPN" : "ALPN " + string.Join(", ", context.ApplicationProtocols);
}
