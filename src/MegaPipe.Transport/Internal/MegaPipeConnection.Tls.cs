// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.IO.Pipelines;
using MegaPipe.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MegaPipe.Transport.Internal;

// TLS terminated on the channel (UseMegaPipeHttps): the connection's receive, output and close points hand their
// bytes to its TlsConnectionLayer. Received ciphertext is fed to the session; the handshake runs here, and the
// connection goes to Kestrel only when it completed (a silent or failing client costs Kestrel nothing), with the
// features that make Kestrel's HTTPS middleware pass it through; after that, records are decrypted straight into
// the input pipe. The output pipe's bytes are encrypted into a channel-owned buffer that is the send (one in flight,
// as for plain connections); TLS output of its own (flights, tickets, key-update answers, alerts) goes out when no
// send is in flight. A graceful close sends close_notify before the FIN.
internal sealed partial class MegaPipeConnection
{
    // Null for plain connections.
    private TlsConnectionLayer? _tls;
    // The handshake's next step waits in the channel's HandshakeScheduler (at most once).
    private bool _handshakeDeferred;
    // The reset (or other receive error) that ended the input, kept for a handshake step that runs later: a client
    // that sends its Finished, part of a request and a reset while the step waits must still look reset to Kestrel,
    // not like a clean end in the middle of a request.
    private Exception? _tlsEndError;

    // On the channel thread, right after the accept: the handshake starts with the client's first bytes, and
    // HandshakeTimeout runs from now.
    public void StartTls(MegaPipeHttpsEndpoint endpoint, TlsServerContext context)
    {
        var tls = new TlsConnectionLayer(endpoint, context, _thread.TlsSendBuffers, this);
        tls.HandshakeAbandoned = OnTlsHandshakeAbandoned;
        tls.Deadlines = _thread.TlsDeadlines;
        _tls = tls;
        _thread.TlsDeadlines.Add(tls, endpoint.HandshakeTimeout, Environment.TickCount64);
    }

    private void OnTlsReceive(in CompletionEvent completion)
    {
        TlsConnectionLayer tls = _tls!;
        if (!_lifetime.IsOpen)
        {
            return; // closing after a failure, a timeout or close_notify: nothing wants these bytes
        }
        Exception? endError = null;
        if (completion.Result > 0)
        {
            tls.Feed(_channel.GetReceivedData(completion));
        }
        else
        {
            // FIN or reset: whether the data ended cleanly is TLS's to say (close_notify, or a record boundary).
            if (completion.Result == 0)
            {
                MegaPipeLog.ConnectionReadFin(_thread.Logger, ConnectionId);
            }
            else
            {
                endError = ReceiveError(completion.Error);
                _tlsEndError = endError;
            }
            tls.CompleteInput();
        }
        if (!tls.IsHandshakeComplete)
        {
            HandshakeScheduler scheduler = _thread.Handshakes;
            if (_handshakeDeferred)
            {
                return; // fed; the waiting step takes these bytes too
            }
            if (!scheduler.TryRunNow())
            {
                // This turn's handshakes used their share: the channel's other connections go first.
                _handshakeDeferred = true;
                scheduler.Defer(this);
                return;
            }
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            bool completed = AdvanceHandshake(tls, endError);
            scheduler.Charge(start);
            if (!completed)
            {
                return;
            }
        }
        DecryptIntoInput(tls, endError);
        FlushTlsOutput();
    }

    // The handshake step HandshakeScheduler held back, in a later turn (the connection may have closed meanwhile).
    public void RunDeferredHandshake()
    {
        _handshakeDeferred = false;
        TlsConnectionLayer tls = _tls!;
        if (!_lifetime.IsOpen || tls.IsHandshakeComplete)
        {
            return;
        }
        if (AdvanceHandshake(tls, _tlsEndError))
        {
            DecryptIntoInput(tls, _tlsEndError);
            FlushTlsOutput();
        }
    }

    // True once the handshake has completed and the connection went to Kestrel.
    private bool AdvanceHandshake(TlsConnectionLayer tls, Exception? endError)
    {
        TlsHandshakeStatus status = tls.Handshake();
        if (status == TlsHandshakeStatus.NeedMoreInput)
        {
            FlushTlsOutput();
            return false;
        }
        _thread.TlsDeadlines.Remove(tls);
        if (status == TlsHandshakeStatus.Failed)
        {
            _thread.TlsHandshakes.Failure();
            MegaPipeTlsLog.HandshakeFailed(_thread.Logger, ConnectionId, tls.FailureReason ?? "unknown reason");
            // The alert OpenSSL queued, then the close (which waits for it); Kestrel never sees the connection.
            FlushTlsOutput();
            BeginClose();
            return false;
        }
        _thread.TlsHandshakes.Completed(tls.IsResumed);
        MegaPipeTlsLog.Established(_thread.Logger, ConnectionId, tls.Protocol, tls.CipherSuiteName, tls.IsResumed ? "resumed" : "full handshake");
        // Kestrel's HTTPS middleware passes a connection with these through; SslStream is never involved.
        Features.Set<ITlsConnectionFeature>(tls);
        Features.Set<ITlsHandshakeFeature>(tls);
        Features.Set<ITlsApplicationProtocolFeature>(tls);
        // The client's first request usually came with its Finished: into the input pipe before Kestrel's first read.
        DecryptIntoInput(tls, endError);
        if (!_lifetime.IsOpen)
        {
            return false; // garbage right after the handshake: the close is under way, Kestrel need not know
        }
        HandOff();
        return true;
    }

    // Decrypts every complete record fed so far into the input pipe (or discards the plaintext when the application
    // stopped reading), then flushes it; the peer's end and record failures end the input.
    private void DecryptIntoInput(TlsConnectionLayer tls, Exception? endError)
    {
        PipeWriter writer = _input.Writer;
        bool wrote = false;
        Span<byte> discard = stackalloc byte[_inputState.IsCompleted ? 2048 : 0];
        while (true)
        {
            bool completed = _inputState.IsCompleted;
            Span<byte> destination = completed ? discard : writer.GetSpan();
            TlsReadStatus status = tls.Decrypt(destination, out int written);
            if (written > 0 && !completed)
            {
                writer.Advance(written);
                wrote = true;
            }
            if (status == TlsReadStatus.DestinationFull)
            {
                continue;
            }
            if (wrote)
            {
                if (_inputState.IsPaused)
                {
                    // Arrived before the stop took effect; committed by the flush after resuming.
                    _inputState.MarkUnflushed();
                }
                else
                {
                    FlushInput();
                }
            }
            switch (status)
            {
                case TlsReadStatus.NeedMoreInput:
                    // Input completed (a FIN or a reset) always ends in one of the statuses below.
                    System.Diagnostics.Debug.Assert(endError is null, "the session reports the end of its input");
                    if (!tls.SendInFlight && !tls.HasPendingOutput)
                    {
                        tls.TrimIfIdle();
                    }
                    return;
                case TlsReadStatus.Closed:
                case TlsReadStatus.ClosedWithoutCloseNotify:
                    // close_notify, or a FIN on a record boundary (normal on the web, as nginx treats it); or a
                    // reset, whose error the reader gets, as on a plain connection.
                    CompleteInput(endError);
                    FireConnectionClosed();
                    return;
                default:
                    if (endError is not null)
                    {
                        // A reset in the middle of a record: the reset is what happened.
                        CompleteInput(endError);
                        FireConnectionClosed();
                        return;
                    }
                    // Garbage, a bad MAC, an alert, a truncated record: this connection ends, with the reason.
                    string reason = tls.FailureReason ?? "TLS record processing failed";
                    MegaPipeTlsLog.RecordFailed(_thread.Logger, ConnectionId, reason);
                    CompleteInput(new ConnectionAbortedException(reason));
                    FireConnectionClosed();
                    FlushTlsOutput();
                    BeginClose();
                    return;
            }
        }
    }

    // The output pipe's buffer as records: as much as one send takes (the rest stays in the pipe for the next read),
    // behind any TLS output of the session's own, and close_notify after the application's last bytes.
    private void SendTls(in ReadOnlySequence<byte> buffer, bool isCompleted)
    {
        TlsConnectionLayer tls = _tls!;
        ReadOnlyMemory<byte> ciphertext = tls.EncryptForSend(buffer, closeAfter: isCompleted, out long consumed);
        if (ciphertext.IsEmpty)
        {
            MegaPipeTlsLog.RecordFailed(_thread.Logger, ConnectionId, tls.FailureReason ?? "TLS encryption failed");
            _output.Reader.AdvanceTo(buffer.Start);
            BeginClose(abortive: true);
            return;
        }
        ReadOnlySequence<byte> taken = buffer.Slice(0, consumed);
        _outputState.BeginSend(taken, last: isCompleted && consumed == buffer.Length);
        _channel.Write(_handle, ciphertext);
    }

    // Sends the session's own pending output when no send is in flight (one at a time).
    private void FlushTlsOutput()
    {
        TlsConnectionLayer tls = _tls!;
        if (tls.SendInFlight || _lifetime.IsClosed || !tls.HasPendingOutput)
        {
            return;
        }
        ReadOnlyMemory<byte> output = tls.TakeStandaloneOutput();
        if (!output.IsEmpty)
        {
            _channel.Write(_handle, output);
        }
    }

    // A standalone send completed; true when it was one (a send with application data goes on in OnWriteCompleted).
    private bool OnTlsWriteCompleted(in CompletionEvent completion)
    {
        TlsConnectionLayer tls = _tls!;
        bool standalone = tls.SendingStandalone;
        tls.EndSend();
        if (!standalone)
        {
            return false;
        }
        if (!completion.Succeeded)
        {
            FailSend(completion.Error);
            return true;
        }
        if (tls.CloseAfterSend)
        {
            // close_notify (or an alert) is out: now the FIN.
            tls.CloseAfterSend = false;
            _channel.Close(_handle, CloseMode.Graceful);
            return true;
        }
        if (tls.OutputWaiting)
        {
            tls.OutputWaiting = false;
            if (ProcessOutput())
            {
                StartOutputRead();
            }
        }
        FlushTlsOutput();
        return true;
    }

    // A graceful close of a TLS connection: close_notify first when the session can still send one. True when the
    // close now waits for a standalone send (close_notify or an alert) and OnTlsWriteCompleted finishes it.
    private bool BeginTlsClose()
    {
        TlsConnectionLayer tls = _tls!;
        if (tls.SendInFlight)
        {
            // A data send in flight is cut by the close, as on a plain connection: no close_notify after a partial
            // record. A close_notify or an alert in flight is waited for.
            tls.CloseAfterSend = tls.SendingStandalone;
            return tls.CloseAfterSend;
        }
        if (tls.TryShutdown())
        {
            ReadOnlyMemory<byte> closeNotify = tls.TakeStandaloneOutput();
            tls.CloseAfterSend = true;
            _channel.Write(_handle, closeNotify);
            return true;
        }
        return false;
    }

    // An abort while the close waits for close_notify to go out: reset now (the send is cancelled).
    private void AbortPendingTlsClose()
    {
        if (_tls is { CloseAfterSend: true } tls)
        {
            tls.CloseAfterSend = false;
            _channel.Close(_handle, CloseMode.Abort);
        }
    }

    // HandshakeTimeout passed (or the server is stopping) before the handshake completed.
    private void OnTlsHandshakeAbandoned(bool timedOut)
    {
        if (timedOut)
        {
            _thread.TlsHandshakes.Timeout();
            MegaPipeTlsLog.HandshakeTimedOut(_thread.Logger, ConnectionId, _tls!.Endpoint.HandshakeTimeout);
        }
        else
        {
            MegaPipeTlsLog.HandshakeFailed(_thread.Logger, ConnectionId, "the server is stopping");
        }
        // No TLS output: the client gets nothing more. Reset, so it costs nothing more either.
        BeginClose(abortive: true);
    }

    // The Close event of a TLS connection: the session is freed (nothing of the connection runs after this event),
    // and a connection that never reached Kestrel (its handshake failed or timed out) is disposed here, as Kestrel
    // would have disposed it, which frees its MaxConnections slot.
    private void OnTlsClosed()
    {
        TlsConnectionLayer tls = _tls!;
        _thread.TlsDeadlines.Remove(tls);
        tls.Dispose();
        if (_lifetime.TryWithholdHandOff())
        {
            _ = DisposeAsync().AsTask();
        }
    }
}
