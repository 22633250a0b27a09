// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

/// <summary>
/// A server's TLS configuration turned into OpenSSL contexts (one <c>SSL_CTX</c> per certificate), made once and
/// shared by every channel: create it at startup, keep it while the endpoint serves, and make one
/// <see cref="TlsSession"/> per connection with <see cref="CreateSession"/>. Thread-safe.
/// </summary>
/// <remarks>
/// Creating the context checks the configuration (protocols, a private key that matches its certificate) and throws
/// <see cref="ArgumentException"/> or <see cref="TlsException"/> with a message that says what is wrong.
/// Disposing it is safe while sessions live: each native session holds its own reference to the native context,
/// and callbacks of a disposed context fail those sessions' handshakes instead of touching freed state.
/// </remarks>
public sealed partial class TlsServerContext : IDisposable
{
    // At most this many distinct selector certificates get a cached native context.
    internal const int MaxSelectedCertificates = 1024;

    // The context sessions start on: it holds ServerCertificate (or no certificate when only a selector is set).
    private readonly SafeSslContextHandle _defaultContext;
    // The certificate in _defaultContext, or null.
    private readonly X509Certificate2? _defaultCertificate;
    // SHA-256 of _defaultCertificate, so the selector returning an equal copy reuses _defaultContext.
    private readonly string? _defaultThumbprint;
    private readonly Func<object?, string?, X509Certificate2?>? _selector;
    // Native contexts built for selector certificates: by instance (no hashing on the hot path), then by SHA-256.
    private readonly ConditionalWeakTable<X509Certificate2, SafeSslContextHandle> _selectedByInstance = new();
    private readonly Dictionary<string, SafeSslContextHandle> _selectedByThumbprint = new(StringComparer.Ordinal);
    private readonly Lock _selectedLock = new();
    private readonly TlsClientCertificateMode _clientCertificateMode;
    private readonly Func<X509Certificate2, X509Chain?, SslPolicyErrors, bool>? _clientCertificateValidation;
    private readonly X509RevocationMode _revocationMode;
    // ALPN protocols in server preference order; a session records the index it chose.
    private readonly SslApplicationProtocol[] _applicationProtocols;
    private readonly int _minVersion;
    private readonly int _maxVersion;
    // Null when session tickets are off.
    private readonly SessionTicketKeys? _ticketKeys;
    // TLS 1.3 tickets per full handshake.
    private readonly int _tls13TicketCount;
    // Random per context: a ticket or session from another context never resumes here.
    private readonly byte[] _sessionIdContext = RandomNumberGenerator.GetBytes(32);
    // 1 once Dispose started.
    private volatile int _disposed;

    /// <summary>Builds the native contexts for <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The options are incomplete or unsafe (for example TLS 1.1, or a certificate without a private key).</exception>
    /// <exception cref="TlsException">OpenSSL refused the configuration (the message carries its reason), or OpenSSL 3 cannot be loaded (<see cref="TlsLibrary.UnavailableReason"/>).</exception>
    public TlsServerContext(TlsServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (TlsLibrary.UnavailableReason is { } unavailable)
        {
            throw new TlsException(unavailable);
        }
        (_minVersion, _maxVersion) = ValidateProtocols(options.SslProtocols);
        if (options.ServerCertificate is null && options.ServerCertificateSelector is null)
        {
            TlsThrowHelper.ThrowArgument("A server certificate is required: set ServerCertificate or ServerCertificateSelector.", nameof(options));
        }
        if (options.SessionTicketKeyRotationInterval <= TimeSpan.Zero)
        {
            TlsThrowHelper.ThrowArgument("SessionTicketKeyRotationInterval must be positive.", nameof(options));
        }
        if (options.Tls13SessionTicketCount is < 0 or > 16)
        {
            TlsThrowHelper.ThrowArgument("Tls13SessionTicketCount must be between 0 and 16.", nameof(options));
        }
        _tls13TicketCount = options.Tls13SessionTicketCount;
        if (!Enum.IsDefined(options.ClientCertificateMode))
        {
            TlsThrowHelper.ThrowArgument($"Unknown ClientCertificateMode {options.ClientCertificateMode}.", nameof(options));
        }
        _applicationProtocols = ValidateApplicationProtocols(options.ApplicationProtocols);
        _selector = options.ServerCertificateSelector;
        _clientCertificateMode = options.ClientCertificateMode;
        _clientCertificateValidation = options.ClientCertificateValidation;
        _revocationMode = options.ClientCertificateRevocationMode;
        _defaultCertificate = options.ServerCertificate;
        _defaultThumbprint = _defaultCertificate is null ? null : Thumbprint(_defaultCertificate);
        try
        {
            if (options.SessionTickets)
            {
                _ticketKeys = new SessionTicketKeys(options.TimeProvider ?? TimeProvider.System, options.SessionTicketKeyRotationInterval);
            }
            _defaultContext = CreateNativeContext(options.ServerCertificate, options.ServerCertificateChain, options.ServerPrivateKey);
        }
        catch
        {
            _ticketKeys?.Dispose();
            throw;
        }
    }

    /// <summary>Whether sessions of this context get session tickets.</summary>
    public bool SessionTickets => _ticketKeys is not null;

    /// <summary>The ALPN protocols the server accepts, in preference order.</summary>
    public IReadOnlyList<SslApplicationProtocol> ApplicationProtocols => _applicationProtocols;

    /// <summary>
    /// Creates the TLS state for one accepted connection. The session belongs to the thread that drives it (the
    /// connection's channel) and must be disposed once the connection's last completion has been handled.
    /// </summary>
    public TlsSession CreateSession()
    {
        ThrowIfDisposed();
        return new TlsSession(this, _defaultContext);
    }

    /// <summary>
    /// Makes a new session ticket key current now (as the rotation interval does): tickets made with the key that was
    /// current until now still resume (and are replaced); older tickets no longer do. The retired key is zeroed.
    /// </summary>
    /// <exception cref="InvalidOperationException">Session tickets are off.</exception>
    public void RotateSessionTicketKeys()
    {
        ThrowIfDisposed();
        if (_ticketKeys is null)
        {
            TlsThrowHelper.ThrowInvalidOperation("Session tickets are off for this context.");
        }
        _ticketKeys.Rotate();
    }

    /// <summary>Releases the native contexts and zeroes the ticket keys. Live sessions keep working until they end; new handshakes on them fail.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _ticketKeys?.Dispose();
        lock (_selectedLock)
        {
            foreach (SafeSslContextHandle context in _selectedByThumbprint.Values)
            {
                context.Dispose();
            }
            _selectedByThumbprint.Clear();
            _selectedByInstance.Clear();
        }
        _defaultContext.Dispose();
    }

    internal bool IsDisposed => _disposed != 0;

    // Native contexts built for selector certificates so far (tests, diagnostics).
    internal int SelectedContextCount
    {
        get
        {
            lock (_selectedLock)
            {
                return _selectedByThumbprint.Count;
            }
        }
    }

    internal SessionTicketKeys? TicketKeys => _ticketKeys;

    internal SslApplicationProtocol GetApplicationProtocol(int index) => _applicationProtocols[index];

    private void ThrowIfDisposed()
    {
        if (_disposed != 0)
        {
            TlsThrowHelper.ThrowDisposed(nameof(TlsServerContext));
        }
    }

    private static (int Min, int Max) ValidateProtocols(SslProtocols protocols)
    {
        if (protocols == SslProtocols.None)
        {
            return (Interop.Ssl.TLS1_2_VERSION, Interop.Ssl.TLS1_3_VERSION);
        }
        const SslProtocols Allowed = SslProtocols.Tls12 | SslProtocols.Tls13;
        if ((protocols & ~Allowed) != 0)
        {
            TlsThrowHelper.ThrowArgument(
                $"SslProtocols {protocols} is not allowed: only Tls12 and Tls13 are supported (SSL 2/3, TLS 1.0 and TLS 1.1 are broken or deprecated by RFC 8996).",
                nameof(TlsServerOptions.SslProtocols));
        }
        int min = (protocols & SslProtocols.Tls12) != 0 ? Interop.Ssl.TLS1_2_VERSION : Interop.Ssl.TLS1_3_VERSION;
        int max = (protocols & SslProtocols.Tls13) != 0 ? Interop.Ssl.TLS1_3_VERSION : Interop.Ssl.TLS1_2_VERSION;
        return (min, max);
    }

    private static SslApplicationProtocol[] ValidateApplicationProtocols(IList<SslApplicationProtocol>? protocols)
    {
        if (protocols is null || protocols.Count == 0)
        {
            return [];
        }
        var result = new SslApplicationProtocol[protocols.Count];
        for (int i = 0; i < result.Length; i++)
        {
            int length = protocols[i].Protocol.Length;
            if (length is 0 or > 255)
            {
                TlsThrowHelper.ThrowArgument("An ALPN protocol name must be 1 to 255 bytes long.", nameof(TlsServerOptions.ApplicationProtocols));
            }
            result[i] = protocols[i];
        }
        return result;
    }

    private static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);
}
