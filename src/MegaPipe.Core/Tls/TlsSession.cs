// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

/// <summary>
/// The TLS state of one connection: an OpenSSL <c>SSL</c> with a memory BIO for received ciphertext and one for
/// ciphertext to send. The socket is not OpenSSL's: the caller feeds what it received (<see cref="Feed"/>), drives
/// <see cref="Handshake"/>, <see cref="Decrypt"/> and <see cref="Encrypt(ReadOnlySpan{byte}, Span{byte}, out int, out int)"/>,
/// and takes the ciphertext to send out with <see cref="TakeOutput"/> (or straight from Encrypt) into its own buffer.
/// Not thread-safe: one owner thread (the connection's channel) makes every call, including <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// <para>Buffer ownership: OpenSSL never keeps a pointer to a caller's buffer. Feed copies the bytes into the read
/// BIO before it returns; Decrypt writes plaintext into the caller's span and Encrypt/TakeOutput write ciphertext
/// into the caller's span only during the call; Encrypt reads the caller's plaintext only during the call. Every
/// byte OpenSSL holds between calls is in memory it owns (the two BIOs and the record buffers, all freed by
/// SSL_free).</para>
/// <para>Native ownership: the session owns the SSL (a SafeHandle); the SSL owns both BIOs (SSL_set_bio) and a
/// reference to its SSL_CTX. Dispose frees the SSL (and with it the BIOs) once, and nothing else ever does (not even
/// a finalizer: a session that is never disposed leaks its SSL); every method checks for disposal first, and since
/// one thread makes every call, none can be running when that happens. Dispose only after the connection's last
/// completion, so nothing still queued for this connection can reach a freed session.</para>
/// <para>Errors: after a failure OpenSSL's per-thread error queue is drained into <see cref="FailureReason"/>, so a
/// stale error never reaches the next connection on the thread. A failed session can still have output pending
/// (an alert): send it, then close.</para>
/// </remarks>
public sealed partial class TlsSession : IDisposable
{
    // Owns the SSL (and through it the BIOs and the ex_data GCHandle).
    private readonly SafeSslHandle _ssl;
    // _ssl's pointer, valid until Dispose (the only place the SSL is freed: SafeSslHandle's finalizer is suppressed).
    private readonly nint _sslPointer;
    // Borrowed from the SSL, which owns them (SSL_set_bio, SSL_set0_*bio): ciphertext received / ciphertext to send.
    // Changed only by TrimBuffers, which replaces a BIO and its pointer in one call on the owner thread.
    private nint _readBio;
    private nint _writeBio;
    // The server context this session belongs to; null for the in-process client.
    private readonly TlsServerContext? _server;
    private SessionPhase _phase;
    // The peer's stream ended (CompleteInput).
    private bool _inputCompleted;
    // How the peer's side ended, once it has.
    private TlsReadStatus _peerEnd;
    private bool _shutdownSent;
    private string? _failureReason;
    // A reason recorded by a callback; folded into the failure reason when the call that ran it fails.
    private string? _callbackFailure;
    private X509Certificate2? _remoteCertificate;
    private bool _remoteCertificateLoaded;
    // Index into the server's ALPN protocols, or -1.
    private int _applicationProtocolIndex = -1;
    private byte[]? _clientApplicationProtocol;
    private string? _hostName;
    private bool _hostNameLoaded;
    private bool _disposed;

    // Where the session is in its life; Failed and the peer's end are terminal for reading.
    private enum SessionPhase : byte
    {
        Handshaking,
        Established,
        Failed,
    }

    internal TlsSession(TlsServerContext server, SafeSslContextHandle context)
        : this(context, isServer: true, serverName: null)
    {
        _server = server;
    }

    // The client side (in-process tests and benchmarks): the server name is sent as SNI.
    internal unsafe TlsSession(SafeSslContextHandle context, bool isServer, string? serverName)
    {
        OpenSslError.Clear();
        _ssl = SafeSslHandle.Create(context);
        if (_ssl.IsInvalid)
        {
            _ssl.Dispose();
            TlsThrowHelper.ThrowOpenSsl("SSL_new");
        }
        try
        {
            _sslPointer = _ssl.DangerousGetHandle();
            nint readBio = Interop.BIO_new(Interop.BIO_s_mem());
            nint writeBio = readBio == 0 ? 0 : Interop.BIO_new(Interop.BIO_s_mem());
            if (writeBio == 0)
            {
                if (readBio != 0)
                {
                    Interop.BIO_free(readBio);
                }
                TlsThrowHelper.ThrowOpenSsl("BIO_new");
            }
            // From here the SSL owns both BIOs: SSL_free frees them, nobody else does.
            Interop.SSL_set_bio(_sslPointer, readBio, writeBio);
            _readBio = readBio;
            _writeBio = writeBio;
            _ssl.AttachSession(this);
            if (isServer)
            {
                Interop.SSL_set_accept_state(_sslPointer);
            }
            else
            {
                if (serverName is not null)
                {
                    byte[] name = System.Text.Encoding.ASCII.GetBytes(serverName + "\0");
                    fixed (byte* pointer = name)
                    {
                        if (Interop.SSL_ctrl(_sslPointer, Interop.Ssl.SSL_CTRL_SET_TLSEXT_HOSTNAME, Interop.Ssl.TLSEXT_NAMETYPE_host_name, (nint)pointer) != 1)
                        {
                            TlsThrowHelper.ThrowOpenSsl("SSL_set_tlsext_host_name");
                        }
                    }
                }
                Interop.SSL_set_connect_state(_sslPointer);
            }
        }
        catch
        {
            _ssl.Dispose();
            throw;
        }
    }

    /// <summary>Frees the native session. Call it once the connection's last completion has been handled; idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _ssl.Dispose();
    }

    /// <summary>
    /// The owner's object for this session, handed to <see cref="TlsServerOptions.ServerCertificateSelector"/> (the
    /// transport sets its connection here). The session never touches it otherwise.
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/>.</remarks>
    public object? State { get; set; }

    internal TlsServerContext? ServerContext => _server;

    // Called by callbacks (on this session's thread, inside one of its calls).
    internal void RecordCallbackFailure(string reason) => _callbackFailure ??= reason;

    internal void SetApplicationProtocolIndex(int index) => _applicationProtocolIndex = index;

    internal void SetRemoteCertificate(X509Certificate2 certificate)
    {
        _remoteCertificate?.Dispose();
        _remoteCertificate = certificate;
        _remoteCertificateLoaded = true;
    }

    // In-process client only: the session to offer for resumption (SSL_set_session takes its own reference).
    internal void SetClientSessionToResume(SafeSslSessionHandle session)
    {
        if (Interop.SSL_set_session(_sslPointer, session.DangerousGetHandle()) != 1)
        {
            TlsThrowHelper.ThrowOpenSsl("SSL_set_session");
        }
        GC.KeepAlive(session);
    }

    // In-process client only: the session (with the latest ticket received) for a later resumption.
    internal SafeSslSessionHandle GetClientSession() => new(Interop.SSL_get1_session(_sslPointer));

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            TlsThrowHelper.ThrowDisposed(nameof(TlsSession));
        }
    }

    // Marks the session failed with a reason built from the callbacks' reason and OpenSSL's drained queue.
    private void Fail(string what, int sslError)
    {
        string? queue = OpenSslError.Drain();
        string reason = what;
        if (_callbackFailure is not null)
        {
            reason += ": " + _callbackFailure;
        }
        if (queue is not null)
        {
            reason += (_callbackFailure is null ? ": " : " (") + queue + (_callbackFailure is null ? "" : ")");
        }
        else if (_callbackFailure is null)
        {
            reason += sslError == Interop.Ssl.SSL_ERROR_SYSCALL ? ": unexpected end of the record stream" : $": SSL_get_error {sslError}";
        }
        FailWith(reason);
    }

    private void FailWith(string reason)
    {
        _phase = SessionPhase.Failed;
        _failureReason ??= reason;
    }
}
