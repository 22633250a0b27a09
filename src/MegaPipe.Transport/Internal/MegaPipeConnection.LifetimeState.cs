// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport.Internal;

internal sealed partial class MegaPipeConnection
{
    // The connection's life on the channel: open, closing (the close was issued to the channel),
    // closed (its Close event came). Apart from that, the peer may end its side first, which
    // fires ConnectionClosed early, once, while sending may still go on.
    private struct LifetimeState
    {
        private Stage _stage;
        // ConnectionClosed was scheduled to fire when the receive side ended, before the Close event.
        private bool _peerGoneFired;
        // The connection was handed to Kestrel (MegaPipeConnection.HandOff).
        private bool _handedOff;

        private enum Stage : byte
        {
            Open,
            Closing,
            Closed,
        }

        // No close has been issued: sends and receives may still be started.
        public readonly bool IsOpen => _stage == Stage.Open;

        // The Close event came: nothing of the connection is left on the channel.
        public readonly bool IsClosed => _stage == Stage.Closed;

        // The close is issued now; false when it already was.
        public bool TryBeginClose()
        {
            if (_stage != Stage.Open)
            {
                return false;
            }
            _stage = Stage.Closing;
            return true;
        }

        public void Closed() => _stage = Stage.Closed;

        // True the first time: the connection goes to Kestrel now.
        public bool TryHandOff()
        {
            if (_handedOff)
            {
                return false;
            }
            _handedOff = true;
            return true;
        }

        // True unless the connection was handed off already: it never will be (a TLS handshake that failed or
        // timed out), so the transport disposes it instead of Kestrel.
        public bool TryWithholdHandOff() => TryHandOff();

        // True the first time the peer is seen gone (end of stream or reset on the receive side).
        public bool TryFirePeerGone()
        {
            if (_peerGoneFired)
            {
                return false;
            }
            _peerGoneFired = true;
            return true;
        }
    }
}
