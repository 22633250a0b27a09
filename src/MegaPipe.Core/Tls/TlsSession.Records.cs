// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

// Records after the handshake: ciphertext in -> plaintext into the caller's span; the caller's plaintext ->
// records straight into the caller's send buffer; close_notify out; the peer's end in.
public sealed partial class TlsSession
{
    /// <summary>The largest plaintext a TLS record carries (2^14 bytes).</summary>
    public const int MaxRecordPlaintext = 16 * 1024;

    /// <summary>
    /// Bytes reserved per record for its header, explicit nonce, tag and TLS 1.3 content type when Encrypt decides how
    /// much plaintext fits the destination (an upper bound: AEAD records add 21 to 29 bytes).
    /// </summary>
    public const int MaxRecordOverhead = 64;

    /// <summary>A destination of this size always takes at least one whole maximum-size record.</summary>
    public const int RecommendedOutputBufferSize = MaxRecordPlaintext + MaxRecordOverhead;

    // A memory BIO keeps the capacity of its largest fill; above this, an empty one is replaced when trimmed.
    private const int TrimThreshold = 4 * 1024;

    // Small sequence segments are gathered into one record instead of one record each (per-thread, used only within a call).
    [ThreadStatic]
    private static byte[]? t_gather;

    /// <summary>Ciphertext fed but not yet consumed by OpenSSL (the read BIO). Stop receiving while it grows (backpressure).</summary>
    public int BufferedInputLength
    {
        get
        {
            ThrowIfDisposed();
            return (int)Interop.BIO_ctrl(_readBio, Interop.Crypto.BIO_CTRL_PENDING, 0, 0);
        }
    }

    /// <summary>Ciphertext waiting to be sent (the write BIO): handshake flights, tickets, alerts, close_notify, records that did not fit.</summary>
    public int PendingOutputLength
    {
        get
        {
            ThrowIfDisposed();
            return (int)Interop.BIO_ctrl(_writeBio, Interop.Crypto.BIO_CTRL_PENDING, 0, 0);
        }
    }

    /// <summary>
    /// Hands ciphertext received from the peer to the session. The bytes are copied before this returns; the caller
    /// keeps ownership of <paramref name="ciphertext"/>. Bytes fed after a failure or after the peer's close_notify are discarded.
    /// </summary>
    public unsafe void Feed(ReadOnlySpan<byte> ciphertext)
    {
        ThrowIfDisposed();
        if (_inputCompleted)
        {
            TlsThrowHelper.ThrowInvalidOperation("Input was completed; nothing can be fed after the end of the peer's stream.");
        }
        if (ciphertext.IsEmpty || _phase == SessionPhase.Failed || _peerEnd != TlsReadStatus.NeedMoreInput)
        {
            return;
        }
        fixed (byte* data = ciphertext)
        {
            // A memory BIO takes everything or fails only when it cannot allocate.
            if (Interop.BIO_write(_readBio, data, ciphertext.Length) != ciphertext.Length)
            {
                TlsThrowHelper.ThrowOpenSsl("BIO_write", "the read buffer could not grow");
            }
        }
    }

    /// <summary>Tells the session that the peer's stream ended (a FIN, or a reset) after the bytes fed so far.</summary>
    public void CompleteInput()
    {
        ThrowIfDisposed();
        _inputCompleted = true;
    }

    /// <summary>
    /// Decrypts as many of the records fed so far as fit into <paramref name="destination"/>, straight into it. TLS 1.3
    /// post-handshake messages (key updates, tickets) are handled on the way and may leave output to send.
    /// </summary>
    /// <exception cref="InvalidOperationException">The handshake has not completed.</exception>
    public unsafe TlsReadStatus Decrypt(Span<byte> destination, out int bytesWritten)
    {
        ThrowIfDisposed();
        bytesWritten = 0;
        if (_phase == SessionPhase.Failed)
        {
            return TlsReadStatus.Failed;
        }
        if (_phase != SessionPhase.Established)
        {
            TlsThrowHelper.ThrowInvalidOperation("Decrypt is allowed only after the handshake completed.");
        }
        if (_peerEnd != TlsReadStatus.NeedMoreInput)
        {
            return _peerEnd;
        }
        if (destination.IsEmpty)
        {
            TlsThrowHelper.ThrowArgument("The destination must not be empty.", nameof(destination));
        }
        OpenSslError.Clear();
        fixed (byte* start = destination)
        {
            int written = 0;
            while (written < destination.Length)
            {
                nuint read;
                if (Interop.SSL_read_ex(_sslPointer, start + written, (nuint)(destination.Length - written), &read) == 1)
                {
                    written += (int)read;
                    if (written < destination.Length && !_inputCompleted && !HasUnreadCiphertext())
                    {
                        // Nothing left to decrypt: skip the SSL_read that would only say WANT_READ.
                        bytesWritten = written;
                        return TlsReadStatus.NeedMoreInput;
                    }
                    continue;
                }
                bytesWritten = written;
                int error = Interop.SSL_get_error(_sslPointer, 0);
                switch (error)
                {
                    case Interop.Ssl.SSL_ERROR_WANT_READ:
                    case Interop.Ssl.SSL_ERROR_WANT_WRITE:
                        return EndOfRecords();
                    case Interop.Ssl.SSL_ERROR_ZERO_RETURN:
                        OpenSslError.Drain();
                        _peerEnd = TlsReadStatus.Closed;
                        return TlsReadStatus.Closed;
                    default:
                        Fail("TLS record processing failed", error);
                        return TlsReadStatus.Failed;
                }
            }
            bytesWritten = written;
            // Full: say "more" only when there may be more, so the caller does not come back for nothing.
            return HasBufferedInput() || _inputCompleted ? TlsReadStatus.DestinationFull : TlsReadStatus.NeedMoreInput;
        }
    }

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> into records written straight into <paramref name="destination"/> (first
    /// any output already pending), as many as fit: each record takes up to <see cref="MaxRecordPlaintext"/> bytes and
    /// is sized to the room left. On <see cref="TlsWriteStatus.DestinationFull"/>, send the destination and call again
    /// with the plaintext not consumed (possibly none, to flush what is pending).
    /// </summary>
    /// <exception cref="InvalidOperationException">The handshake has not completed, or close_notify was already queued.</exception>
    public unsafe TlsWriteStatus Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> destination, out int bytesConsumed, out int bytesWritten)
    {
        ThrowIfDisposed();
        bytesConsumed = 0;
        bytesWritten = 0;
        if (_phase == SessionPhase.Failed)
        {
            return TlsWriteStatus.Failed;
        }
        if (_phase != SessionPhase.Established)
        {
            TlsThrowHelper.ThrowInvalidOperation("Encrypt is allowed only after the handshake completed.");
        }
        if (_shutdownSent)
        {
            TlsThrowHelper.ThrowInvalidOperation("close_notify was queued; nothing can be encrypted after it.");
        }
        return EncryptCore(plaintext, destination, ref bytesConsumed, ref bytesWritten);
    }

    /// <summary>
    /// Encrypts a sequence (the output pipe's read result) like <see cref="Encrypt(ReadOnlySpan{byte}, Span{byte}, out int, out int)"/>.
    /// Segments smaller than a record are gathered so that each record is as full as the destination allows.
    /// </summary>
    public TlsWriteStatus Encrypt(in ReadOnlySequence<byte> plaintext, Span<byte> destination, out long bytesConsumed, out int bytesWritten)
    {
        if (plaintext.IsSingleSegment)
        {
            TlsWriteStatus single = Encrypt(plaintext.FirstSpan, destination, out int consumed, out bytesWritten);
            bytesConsumed = consumed;
            return single;
        }
        ThrowIfDisposed();
        bytesConsumed = 0;
        bytesWritten = 0;
        if (_phase == SessionPhase.Failed)
        {
            return TlsWriteStatus.Failed;
        }
        if (_phase != SessionPhase.Established || _shutdownSent)
        {
            TlsThrowHelper.ThrowInvalidOperation(_shutdownSent ? "close_notify was queued; nothing can be encrypted after it." : "Encrypt is allowed only after the handshake completed.");
        }
        byte[] gather = t_gather ??= GC.AllocateUninitializedArray<byte>(MaxRecordPlaintext, pinned: true);
        int gathered = 0;
        int written = 0;
        foreach (ReadOnlyMemory<byte> segment in plaintext)
        {
            ReadOnlySpan<byte> span = segment.Span;
            while (!span.IsEmpty)
            {
                if (gathered == 0 && span.Length >= MaxRecordPlaintext / 4)
                {
                    // Large enough to make good records on its own: no copy.
                    int consumed = 0;
                    TlsWriteStatus status = EncryptCore(span, destination, ref consumed, ref written);
                    bytesConsumed += consumed;
                    bytesWritten = written;
                    if (status != TlsWriteStatus.Completed)
                    {
                        return status;
                    }
                    span = default;
                    continue;
                }
                int take = Math.Min(span.Length, gather.Length - gathered);
                span[..take].CopyTo(gather.AsSpan(gathered));
                gathered += take;
                span = span[take..];
                if (gathered == gather.Length)
                {
                    TlsWriteStatus status = FlushGathered(gather, ref gathered, destination, ref bytesConsumed, ref written);
                    bytesWritten = written;
                    if (status != TlsWriteStatus.Completed)
                    {
                        return status;
                    }
                }
            }
        }
        TlsWriteStatus last = gathered == 0 ? TlsWriteStatus.Completed : FlushGathered(gather, ref gathered, destination, ref bytesConsumed, ref written);
        bytesWritten = written;
        return last;
    }

    /// <summary>
    /// Copies pending ciphertext (handshake flights, tickets, alerts, close_notify) into <paramref name="destination"/>
    /// and returns how many bytes were copied. The bytes are removed from the session.
    /// </summary>
    public unsafe int TakeOutput(Span<byte> destination)
    {
        ThrowIfDisposed();
        if (destination.IsEmpty)
        {
            return 0;
        }
        fixed (byte* start = destination)
        {
            // An empty memory BIO returns -1 (retry); that is "nothing pending", not an error.
            int read = Interop.BIO_read(_writeBio, start, destination.Length);
            return Math.Max(read, 0);
        }
    }

    /// <summary>
    /// Queues close_notify (take it with <see cref="TakeOutput"/> and send it before the FIN). Idempotent; does nothing
    /// before the handshake completed or after a failure. Nothing can be encrypted afterwards.
    /// </summary>
    public void Shutdown()
    {
        ThrowIfDisposed();
        if (_phase != SessionPhase.Established || _shutdownSent)
        {
            return;
        }
        _shutdownSent = true;
        OpenSslError.Clear();
        if (Interop.SSL_shutdown(_sslPointer) < 0)
        {
            // Nothing can be sent (the session is broken): record why; the connection closes anyway.
            _failureReason ??= "close_notify could not be queued: " + (OpenSslError.Drain() ?? "unknown reason");
        }
    }

    /// <summary>
    /// Releases memory an idle connection does not need: a memory BIO keeps the capacity of its largest fill (a 16 KiB
    /// record leaves about 16 KiB behind in each direction), so an empty BIO that grew past 4 KiB is replaced with a new
    /// one (OpenSSL frees the old one). Call it when the connection goes idle: nothing to send and waiting for the peer.
    /// Cheap when there is nothing to release (two BIO queries); never loses bytes (a BIO with data is left alone).
    /// Returns whether anything was released.
    /// </summary>
    public bool TrimBuffers()
    {
        ThrowIfDisposed();
        bool trimmed = false;
        if (IsOversizedAndEmpty(_readBio))
        {
            nint fresh = Interop.BIO_new(Interop.BIO_s_mem());
            if (fresh != 0)
            {
                // The SSL frees the old BIO here; nothing else holds its pointer (only _readBio, replaced at once).
                Interop.SSL_set0_rbio(_sslPointer, fresh);
                _readBio = fresh;
                trimmed = true;
            }
        }
        if (IsOversizedAndEmpty(_writeBio))
        {
            nint fresh = Interop.BIO_new(Interop.BIO_s_mem());
            if (fresh != 0)
            {
                Interop.SSL_set0_wbio(_sslPointer, fresh);
                _writeBio = fresh;
                trimmed = true;
            }
        }
        // A failed BIO_new only means nothing was trimmed; its error must not reach the next call.
        OpenSslError.Clear();
        return trimmed;
    }

    private static unsafe bool IsOversizedAndEmpty(nint bio)
    {
        if (Interop.BIO_ctrl(bio, Interop.Crypto.BIO_CTRL_PENDING, 0, 0) != 0)
        {
            return false;
        }
        Interop.BUF_MEM* memory = null;
        Interop.BIO_ctrl(bio, Interop.Crypto.BIO_C_GET_BUF_MEM_PTR, 0, (nint)(&memory));
        return memory != null && memory->max > TrimThreshold;
    }

    /// <summary>Whether the peer's close_notify has been received.</summary>
    public bool CloseNotifyReceived => _peerEnd == TlsReadStatus.Closed;

    /// <summary>Whether <see cref="Shutdown"/> queued close_notify.</summary>
    public bool CloseNotifySent => _shutdownSent;

    private unsafe TlsWriteStatus EncryptCore(ReadOnlySpan<byte> plaintext, Span<byte> destination, ref int bytesConsumed, ref int bytesWritten)
    {
        if (PendingOutputLength > 0 && !DrainOutput(destination, ref bytesWritten))
        {
            return TlsWriteStatus.DestinationFull;
        }
        OpenSslError.Clear();
        fixed (byte* source = plaintext)
        {
            while (bytesConsumed < plaintext.Length)
            {
                int room = destination.Length - bytesWritten;
                if (room <= MaxRecordOverhead)
                {
                    return TlsWriteStatus.DestinationFull;
                }
                int chunk = Math.Min(Math.Min(plaintext.Length - bytesConsumed, MaxRecordPlaintext), room - MaxRecordOverhead);
                nuint done;
                // One SSL_write of at most 2^14 bytes makes exactly one record in the write BIO.
                if (Interop.SSL_write_ex(_sslPointer, source + bytesConsumed, (nuint)chunk, &done) != 1)
                {
                    int error = Interop.SSL_get_error(_sslPointer, 0);
                    Fail("TLS encryption failed", error);
                    return TlsWriteStatus.Failed;
                }
                bytesConsumed += (int)done;
                if (!DrainOutput(destination, ref bytesWritten))
                {
                    // Something else was queued with the record (a key update) and did not fit: it waits in the BIO.
                    return TlsWriteStatus.DestinationFull;
                }
            }
        }
        return TlsWriteStatus.Completed;
    }

    // Moves pending output into the destination; returns whether the write BIO is now empty. A read shorter than the
    // room left means the BIO ran dry, so only a read that filled the room needs a second look.
    private unsafe bool DrainOutput(Span<byte> destination, ref int bytesWritten)
    {
        int room = destination.Length - bytesWritten;
        if (room == 0)
        {
            return PendingOutputLength == 0;
        }
        int taken;
        fixed (byte* start = destination)
        {
            taken = Math.Max(Interop.BIO_read(_writeBio, start + bytesWritten, room), 0);
        }
        bytesWritten += taken;
        return taken < room || PendingOutputLength == 0;
    }

    // Ciphertext the SSL could still turn into records now: in the read BIO or in OpenSSL's record buffer.
    private bool HasUnreadCiphertext()
        => Interop.BIO_ctrl(_readBio, Interop.Crypto.BIO_CTRL_PENDING, 0, 0) > 0 || Interop.SSL_has_pending(_sslPointer) == 1;

    // Encrypts the gathered bytes; those that did not fit are not counted as consumed (the caller offers them again).
    private TlsWriteStatus FlushGathered(byte[] gather, ref int gathered, Span<byte> destination, ref long bytesConsumed, ref int written)
    {
        int consumed = 0;
        TlsWriteStatus status = EncryptCore(gather.AsSpan(0, gathered), destination, ref consumed, ref written);
        bytesConsumed += consumed;
        gathered = 0;
        return status == TlsWriteStatus.Completed || consumed == 0 ? status : TlsWriteStatus.DestinationFull;
    }

    // No complete record left: either more input is needed, or the peer's stream ended.
    private TlsReadStatus EndOfRecords()
    {
        if (!_inputCompleted)
        {
            return TlsReadStatus.NeedMoreInput;
        }
        OpenSslError.Drain();
        if (HasBufferedInput())
        {
            FailWith("TLS record processing failed: the peer closed the connection in the middle of a record (truncated record)");
            return TlsReadStatus.Failed;
        }
        _peerEnd = TlsReadStatus.ClosedWithoutCloseNotify;
        return TlsReadStatus.ClosedWithoutCloseNotify;
    }

    // Ciphertext not yet turned into plaintext: in the read BIO, in OpenSSL's record buffer, or a record whose
    // header was read and whose body has not arrived (record layer state "RB": read body).
    private unsafe bool HasBufferedInput()
    {
        if (Interop.BIO_ctrl(_readBio, Interop.Crypto.BIO_CTRL_PENDING, 0, 0) > 0 || Interop.SSL_has_pending(_sslPointer) == 1)
        {
            return true;
        }
        byte* state = (byte*)Interop.SSL_rstate_string(_sslPointer);
        return state != null && state[0] == (byte)'R' && state[1] == (byte)'B';
    }
}
