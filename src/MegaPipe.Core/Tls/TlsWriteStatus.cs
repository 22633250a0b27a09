// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tls;

/// <summary>The outcome of <see cref="TlsSession.Encrypt(ReadOnlySpan{byte}, Span{byte}, out int, out int)"/>.</summary>
public enum TlsWriteStatus
{
    /// <summary>All the plaintext was encrypted and all the records were copied to the destination.</summary>
    Completed,

    /// <summary>The destination filled up first: send it, then call again with the rest of the plaintext.</summary>
    DestinationFull,

    /// <summary>The session cannot encrypt (it failed, or is closed); see <see cref="TlsSession.FailureReason"/>.</summary>
    Failed,
}
