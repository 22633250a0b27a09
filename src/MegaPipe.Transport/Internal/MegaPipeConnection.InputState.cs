// Licensed under the MIT License. See LICENSE in the repository root.

using System.IO.Pipelines;

namespace MegaPipe.Transport.Internal;

internal sealed partial class MegaPipeConnection
{
    // The input side, which the channel thread writes: received bytes go into the input pipe
    // until the writer is completed; receiving pauses while the reader is behind (a flush is
    // pending) and resumes when it catches up. A pause and a completion can overlap: the end of
    // stream may arrive while paused.
    private struct InputState
    {
        // The input writer is completed (end of stream, an error, or close).
        private bool _completed;
        // Receiving is stopped for backpressure; _pendingFlush completes when the reader catches up.
        private bool _paused;
        // Bytes were written into the pipe after the pause; they need one more flush.
        private bool _unflushed;
        private ValueTask<FlushResult> _pendingFlush;

        // Nothing more goes into the pipe.
        public readonly bool IsCompleted => _completed;

        // Receiving is stopped until the reader catches up.
        public readonly bool IsPaused => _paused;

        // The writer completes now; false when it already had.
        public bool TryComplete()
        {
            if (_completed)
            {
                return false;
            }
            _completed = true;
            return true;
        }

        // A flush did not complete: receiving stops until it does.
        public void Pause(ValueTask<FlushResult> flush)
        {
            _paused = true;
            _pendingFlush = flush;
        }

        // Bytes arrived after the pause took effect; the flush after resuming commits them.
        public void MarkUnflushed() => _unflushed = true;

        // The reader caught up: the pause ends, and the flush it waited for is handed back.
        public ValueTask<FlushResult> Resume()
        {
            _paused = false;
            ValueTask<FlushResult> flush = _pendingFlush;
            _pendingFlush = default;
            return flush;
        }

        // The connection closed: a pause ends with it (its flush is no longer waited for).
        public void EndPause() => _paused = false;

        // True, once, when bytes written during the pause still need a flush.
        public bool TakeUnflushed()
        {
            bool unflushed = _unflushed;
            _unflushed = false;
            return unflushed;
        }
    }
}
