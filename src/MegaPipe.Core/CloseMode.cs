// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>How <see cref="MegaPipeChannel.Close(MegaPipeHandle, CloseMode)"/> ends a connected socket.</summary>
/// <remarks>
/// Every mode cancels the handle's commands still in flight first, and no event of the handle
/// but the final <see cref="ChannelCommand.Close"/> follows. Handles other than connected sockets
/// (listeners, pipes, files, a socket whose connect has not created it yet) close the same way in
/// every mode.
/// </remarks>
public enum CloseMode
{
    /// <summary>
    /// The orderly end: the send side is shut down first (shutdown(2) with SHUT_WR, which sends
    /// FIN after the data already queued), and the descriptor is closed once that is done. The
    /// peer reads the end of stream even when its next request already waits here unread, where
    /// close(2) alone would answer that request with a reset.
    /// </summary>
    Graceful,

    /// <summary>
    /// close(2) at once, as <see cref="MegaPipeChannel.Close(MegaPipeHandle)"/> does: the kernel
    /// ends the connection with FIN, or with a reset (RST) when received data is still unread.
    /// </summary>
    Immediate,

    /// <summary>
    /// An abortive close, as <see cref="MegaPipeChannel.Abort(MegaPipeHandle)"/> does: SO_LINGER is
    /// set to zero first, so the kernel resets the connection (RST) and drops unsent data, and the
    /// peer can tell an abort from an orderly end.
    /// </summary>
    Abort,
}
