// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

// What the handshake negotiated: what Kestrel's ITlsHandshakeFeature, ITlsApplicationProtocolFeature and
// ITlsConnectionFeature report. Read after Completed; before that the values are empty.
public sealed partial class TlsSession
{
    /// <summary>Whether the handshake completed.</summary>
    public bool IsHandshakeComplete => _phase == SessionPhase.Established || (_phase == SessionPhase.Failed && Interop.SSL_is_init_finished(_sslPointer) == 1);

    /// <summary>Why the session failed (for logs: never contains key material), or <see langword="null"/>.</summary>
    public string? FailureReason => _failureReason;

    /// <summary>The negotiated protocol version, or <see cref="SslProtocols.None"/> before the handshake completed.</summary>
    public SslProtocols Protocol
    {
        get
        {
            ThrowIfDisposed();
            if (!IsHandshakeComplete)
            {
                return SslProtocols.None;
            }
            return Interop.SSL_version(_sslPointer) switch
            {
                Interop.Ssl.TLS1_3_VERSION => SslProtocols.Tls13,
                Interop.Ssl.TLS1_2_VERSION => SslProtocols.Tls12,
                _ => SslProtocols.None,
            };
        }
    }

    /// <summary>The negotiated cipher suite (its IANA value), or <see langword="null"/> before the handshake completed.</summary>
    public TlsCipherSuite? CipherSuite
    {
        get
        {
            ThrowIfDisposed();
            nint cipher = IsHandshakeComplete ? Interop.SSL_get_current_cipher(_sslPointer) : 0;
            return cipher == 0 ? null : (TlsCipherSuite)Interop.SSL_CIPHER_get_protocol_id(cipher);
        }
    }

    /// <summary>The negotiated cipher suite's IANA name (for example <c>TLS_AES_128_GCM_SHA256</c>), or <see langword="null"/>.</summary>
    public string? CipherSuiteName
    {
        get
        {
            ThrowIfDisposed();
            nint cipher = IsHandshakeComplete ? Interop.SSL_get_current_cipher(_sslPointer) : 0;
            return cipher == 0 ? null : Marshal.PtrToStringUTF8(Interop.SSL_CIPHER_standard_name(cipher));
        }
    }

    /// <summary>The SNI host name the client sent, or <see langword="null"/>.</summary>
    public string? HostName
    {
        get
        {
            ThrowIfDisposed();
            if (!_hostNameLoaded)
            {
                nint name = Interop.SSL_get_servername(_sslPointer, Interop.Ssl.TLSEXT_NAMETYPE_host_name);
                _hostName = name == 0 ? null : Marshal.PtrToStringUTF8(name);
                // Before the ClientHello is parsed the answer may change; cache it only once it can no longer.
                _hostNameLoaded = name != 0 || _phase != SessionPhase.Handshaking;
            }
            return _hostName;
        }
    }

    /// <summary>The ALPN protocol negotiated (for example <c>h2</c>), or empty when none was.</summary>
    public ReadOnlyMemory<byte> ApplicationProtocol
    {
        get
        {
            ThrowIfDisposed();
            if (_server is not null)
            {
                return _applicationProtocolIndex < 0 ? default : _server.GetApplicationProtocol(_applicationProtocolIndex).Protocol;
            }
            return _clientApplicationProtocol ??= LoadSelectedApplicationProtocol();
        }
    }

    /// <summary>The ALPN protocol negotiated as an <see cref="SslApplicationProtocol"/>, or <see langword="default"/>.</summary>
    public SslApplicationProtocol NegotiatedApplicationProtocol
        => _server is not null && _applicationProtocolIndex >= 0 ? _server.GetApplicationProtocol(_applicationProtocolIndex) : default;

    /// <summary>
    /// The peer's certificate (the client certificate, on a server), or <see langword="null"/> when it sent none. On a
    /// resumed session it is the one validated in the original handshake. The caller may keep it; the session does not dispose it.
    /// </summary>
    public X509Certificate2? RemoteCertificate
    {
        get
        {
            ThrowIfDisposed();
            if (!_remoteCertificateLoaded && IsHandshakeComplete)
            {
                _remoteCertificateLoaded = true;
                using var peer = new SafeX509Handle(Interop.SSL_get1_peer_certificate(_sslPointer));
                _remoteCertificate = peer.IsInvalid ? null : X509Interop.ToManaged(peer.DangerousGetHandle());
            }
            return _remoteCertificate;
        }
    }

    /// <summary>Whether the session was resumed (a session ticket) rather than fully negotiated.</summary>
    public bool IsResumed
    {
        get
        {
            ThrowIfDisposed();
            return IsHandshakeComplete && Interop.SSL_session_reused(_sslPointer) == 1;
        }
    }

    private unsafe byte[] LoadSelectedApplicationProtocol()
    {
        byte* data;
        uint length;
        Interop.SSL_get0_alpn_selected(_sslPointer, &data, &length);
        return length == 0 ? [] : new ReadOnlySpan<byte>(data, (int)length).ToArray();
    }
}
