// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Diagnostics;

namespace MegaPipe.Transport.Internal;

internal sealed partial class MegaPipeConnection
{
    // The output side, which the channel thread reads: idle (a read of the output pipe may be
    // pending), sending one buffer (one send in flight per connection, so partial sends complete
    // in order), or completed (the output reader is done).
    private struct OutputState
    {
        private Stage _stage;
        // The buffer of the send in flight.
        private ReadOnlySequence<byte> _sending;

        private enum Stage : byte
        {
            Idle,
            Sending,
            // Sending the last buffer: the application completed its output after it.
            SendingLast,
            Completed,
        }

        // The output reader is completed.
        public readonly bool IsCompleted => _stage == Stage.Completed;

        // A send of buffer goes in flight; last: the application completed its output after it.
        public void BeginSend(in ReadOnlySequence<byte> buffer, bool last)
        {
            Debug.Assert(_stage == Stage.Idle, "one send in flight per connection");
            _sending = buffer;
            _stage = last ? Stage.SendingLast : Stage.Sending;
        }

        // The send completed: its buffer, and whether it was the last one.
        public ReadOnlySequence<byte> EndSend(out bool last)
        {
            Debug.Assert(_stage is Stage.Sending or Stage.SendingLast, "a send completed with none in flight");
            last = _stage == Stage.SendingLast;
            ReadOnlySequence<byte> sent = _sending;
            _sending = default;
            _stage = Stage.Idle;
            return sent;
        }

        // The output reader completes now (a send failed, or the connection closed); false when it already had.
        public bool TryComplete()
        {
            if (_stage == Stage.Completed)
            {
                return false;
            }
            _sending = default;
            _stage = Stage.Completed;
            return true;
        }
    }
}
