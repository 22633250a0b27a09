// Licensed under the MIT License. See LICENSE in the repository root.

using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

// The handshake: fed ciphertext in, flights out through the write BIO.
public sealed partial class TlsSession
{
    /// <summary>
    /// Advances the handshake with the bytes fed so far. After every call, send <see cref="PendingOutputLength"/>
    /// bytes (<see cref="TakeOutput"/>): the server's flights, or an alert after a failure. Once
    /// <see cref="TlsHandshakeStatus.Completed"/>, call <see cref="Decrypt"/> at once: the peer's first
    /// application data often arrives with its last handshake flight. Calls after completion return Completed.
    /// </summary>
    public TlsHandshakeStatus Handshake()
    {
        ThrowIfDisposed();
        switch (_phase)
        {
            case SessionPhase.Established:
                return TlsHandshakeStatus.Completed;
            case SessionPhase.Failed:
                return TlsHandshakeStatus.Failed;
        }
        OpenSslError.Clear();
        int result = Interop.SSL_do_handshake(_sslPointer);
        if (result == 1)
        {
            _phase = SessionPhase.Established;
            // A callback may have recorded a soft failure (a ticket not issued) that did not fail the handshake.
            _callbackFailure = null;
            return TlsHandshakeStatus.Completed;
        }
        int error = Interop.SSL_get_error(_sslPointer, result);
        switch (error)
        {
            case Interop.Ssl.SSL_ERROR_WANT_READ:
            case Interop.Ssl.SSL_ERROR_WANT_WRITE: // a memory BIO never refuses a write; listed for completeness
                if (_inputCompleted)
                {
                    OpenSslError.Drain();
                    FailWith("TLS handshake failed: the peer closed the connection before the handshake completed");
                    return TlsHandshakeStatus.Failed;
                }
                return TlsHandshakeStatus.NeedMoreInput;
            case Interop.Ssl.SSL_ERROR_ZERO_RETURN:
                OpenSslError.Drain();
                FailWith("TLS handshake failed: the peer sent close_notify during the handshake");
                return TlsHandshakeStatus.Failed;
            default:
                Fail("TLS handshake failed", error);
                return TlsHandshakeStatus.Failed;
        }
    }
}
