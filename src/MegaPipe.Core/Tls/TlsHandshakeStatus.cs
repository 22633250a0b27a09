// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tls;

/// <summary>The outcome of <see cref="TlsSession.Handshake"/>. Check <see cref="TlsSession.PendingOutputLength"/> after each.</summary>
public enum TlsHandshakeStatus
{
    /// <summary>The handshake needs more bytes from the peer: feed the next receive and call again.</summary>
    NeedMoreInput,

    /// <summary>The handshake finished. Bytes already fed may hold application data: call <see cref="TlsSession.Decrypt"/> next.</summary>
    Completed,

    /// <summary>The handshake failed; <see cref="TlsSession.FailureReason"/> says why. Send any pending output (an alert), then close.</summary>
    Failed,
}
