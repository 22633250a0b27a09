// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.Internal;

// Receiving: continuous receive into channel buffers, copied into the input pipe; stopped while
// the pipe is over its pause threshold and restarted when the application catches up.
internal sealed partial class MegaPipeConnection
{
    private void OnReceive(in CompletionEvent completion)
    {
        if (_tls is not null)
        {
            OnTlsReceive(completion);
            return;
        }
        if (completion.Result > 0)
        {
            if (_inputState.IsCompleted)
            {
                return; // the application stopped reading: nothing wants these bytes
            }
            PipeWriter writer = _input.Writer;
            writer.Write(_channel.GetReceivedData(completion));
            if (_inputState.IsPaused)
            {
                // Arrived before the stop took effect; committed by the flush after resuming.
                _inputState.MarkUnflushed();
                return;
            }
            FlushInput();
            return;
        }

        if (completion.Result == 0)
        {
            MegaPipeLog.ConnectionReadFin(_thread.Logger, ConnectionId);
            CompleteInput(null);
            FireConnectionClosed();
            return;
        }

        CompleteInput(ReceiveError(completion.Error));
        FireConnectionClosed();
    }

    // A failed receive, logged, as the error the input pipe's reader gets.
    private Exception ReceiveError(Errno error)
    {
        if (error is Errno.ECONNRESET or Errno.EPIPE or Errno.ECONNABORTED or Errno.ETIMEDOUT)
        {
            MegaPipeLog.ConnectionReset(_thread.Logger, ConnectionId, error);
            return new ConnectionResetException($"The connection was reset by the peer ({error}).", new MegaPipeException("recv", error));
        }
        MegaPipeLog.ConnectionError(_thread.Logger, ConnectionId, error);
        return new ConnectionAbortedException($"Receiving failed ({error}).", new MegaPipeException("recv", error));
    }

    private void FlushInput()
    {
        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted)
            {
                StopReceiving();
            }
            return;
        }
        // Backpressure: stop receiving until the reader drains below the resume threshold.
        _inputState.Pause(flush);
        StopReceiving();
        MegaPipeLog.ConnectionPause(_thread.Logger, ConnectionId);
        flush.GetAwaiter().UnsafeOnCompleted(_resumeCallback);
    }

    private void ResumeReading()
    {
        if (!_inputState.IsPaused)
        {
            return;
        }
        ValueTask<FlushResult> flush = _inputState.Resume();
        FlushResult result;
        try
        {
            result = flush.GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            CompleteInput(null);
            return;
        }
        if (result.IsCompleted || _inputState.IsCompleted || !_lifetime.IsOpen)
        {
            return;
        }
        MegaPipeLog.ConnectionResume(_thread.Logger, ConnectionId);
        if (_inputState.TakeUnflushed())
        {
            FlushInput();
            if (_inputState.IsPaused)
            {
                return;
            }
        }
        _channel.Receive(_handle);
    }

    private void StopReceiving()
    {
        if (_lifetime.IsOpen)
        {
            _channel.StopReceive(_handle);
        }
    }
}
