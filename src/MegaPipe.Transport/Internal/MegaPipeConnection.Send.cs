// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.Internal;

// Sending: the output pipe is read on the channel thread; each read's whole buffer becomes one
// gathered write, batched with other connections' commands. One send is in flight at a time,
// so partial sends complete in order.
internal sealed partial class MegaPipeConnection
{
    // Reads the output pipe until a read is pending or a send was issued.
    private void StartOutputRead()
    {
        while (_lifetime.IsOpen)
        {
            _outputRead = _output.Reader.ReadAsync();
            if (!_outputRead.IsCompleted)
            {
                _outputRead.GetAwaiter().UnsafeOnCompleted(_outputReadyCallback);
                return;
            }
            if (!ProcessOutput())
            {
                return;
            }
        }
    }

    // Handles a completed output read; true when the caller should read again.
    private bool ProcessOutput()
    {
        if (_tls is { SendInFlight: true } tls)
        {
            // TLS output of the session's own is in flight: this read waits for its completion (one send at a time).
            tls.OutputWaiting = true;
            return false;
        }
        ReadResult result;
        try
        {
            result = _outputRead.GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            BeginClose();
            return false;
        }
        _outputRead = default;
        var buffer = result.Buffer;
        if (!_lifetime.IsOpen)
        {
            return false;
        }
        if (!buffer.IsEmpty)
        {
            if (_tls is not null)
            {
                SendTls(buffer, result.IsCompleted);
                return false;
            }
            _outputState.BeginSend(buffer, last: result.IsCompleted);
            _channel.Write(_handle, buffer);
            return false;
        }
        _output.Reader.AdvanceTo(buffer.End);
        if (result.IsCompleted || result.IsCanceled)
        {
            MegaPipeLog.ConnectionWriteFin(_thread.Logger, ConnectionId, "The application completed the output.");
            BeginClose();
            return false;
        }
        return true;
    }

    private void OnWriteCompleted(in CompletionEvent completion)
    {
        if (_tls is not null && OnTlsWriteCompleted(completion))
        {
            return;
        }
        ReadOnlySequence<byte> sent = _outputState.EndSend(out bool last);
        if (!completion.Succeeded)
        {
            FailSend(completion.Error);
            return;
        }
        _output.Reader.AdvanceTo(sent.End);
        if (last)
        {
            MegaPipeLog.ConnectionWriteFin(_thread.Logger, ConnectionId, "The application completed the output.");
            BeginClose();
            return;
        }
        StartOutputRead();
        if (_tls is not null)
        {
            FlushTlsOutput();
            if (!_tls.SendInFlight)
            {
                _tls.TrimIfIdle();
            }
        }
    }

    // A send failed: the reason goes to the reader of the input, as with Kestrel's Sockets transport;
    // the output completes without one, since Kestrel treats a throwing flush as a server bug (it
    // logs an error); the application learns through RequestAborted.
    private void FailSend(Errno error)
    {
        MegaPipeLog.ConnectionError(_thread.Logger, ConnectionId, error);
        CompleteInput(error is Errno.ECONNRESET or Errno.EPIPE
            ? new ConnectionResetException($"The connection was reset by the peer ({error}).", new MegaPipeException("send", error))
            : new ConnectionAbortedException($"Sending failed ({error}).", new MegaPipeException("send", error)));
        if (_outputState.TryComplete())
        {
            _output.Reader.Complete();
        }
        // A TLS stream that lost a send is broken: no close_notify after it (an abort also ends a close that waited
        // for a close_notify that failed).
        BeginClose(abortive: _tls is not null);
    }
}
