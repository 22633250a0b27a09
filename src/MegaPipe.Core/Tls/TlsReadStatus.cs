// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tls;

/// <summary>The outcome of <see cref="TlsSession.Decrypt"/>; any status may come with plaintext written.</summary>
public enum TlsReadStatus
{
    /// <summary>Every complete record fed so far has been decrypted: feed more input.</summary>
    NeedMoreInput,

    /// <summary>The destination is full and more plaintext may be ready: call again with more room.</summary>
    DestinationFull,

    /// <summary>The peer sent close_notify: its data is complete and nothing more will be decrypted.</summary>
    Closed,

    /// <summary>
    /// The peer's stream ended (<see cref="TlsSession.CompleteInput"/>) on a record boundary without close_notify.
    /// Common on the web and treated as a normal end, as nginx does; reported apart from <see cref="Closed"/>.
    /// </summary>
    ClosedWithoutCloseNotify,

    /// <summary>A record could not be processed (garbage, a bad MAC, an alert, a truncated record); see <see cref="TlsSession.FailureReason"/>.</summary>
    Failed,
}
