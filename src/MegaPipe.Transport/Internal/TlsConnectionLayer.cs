// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Diagnostics;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MegaPipe.Transport.Internal;

// The TLS of one connection terminated on its channel: the TlsSession, the ciphertext buffer of the send in flight,
// the handshake deadline, and what Kestrel sees of the handshake. MegaPipeConnection.Tls.cs drives it at the
// connection's receive, output and close points; everything here runs on the channel thread except the feature
// properties, which Kestrel reads on its own threads and which only return values copied when the handshake
// completed (before the hand-off published the connection), never the session.
//
// Native lifetime: the session (an OpenSSL SSL, with its BIOs) is created with the layer at accept and freed by
// Dispose, which the connection calls on its Close event, the handle's last event: no receive, send or posted work
// of the connection reaches the layer after it (Execute returns early once closed, and the deadline list no longer
// holds it). The ciphertext buffer of a send goes back to the channel's pool on that send's completion or, for a send
// the close cancelled, on the Close event, once the kernel no longer reads it.
internal sealed class TlsConnectionLayer : ITlsConnectionFeature, ITlsHandshakeFeature, ITlsApplicationProtocolFeature
{
    private readonly TlsSession _session;
    private readonly TlsSendBuffers _buffers;
    private Phase _phase;
    // The ciphertext buffer of the send in flight (null when none is).
    private byte[]? _sending;
    // That send carries no application data (a handshake flight, tickets, an alert, close_notify).
    private bool _sendingStandalone;
    // Bytes through the session's memory BIOs since the last trim: a BIO grows (and keeps its capacity) only when more
    // than TrimThreshold bytes sit in it at once, which takes at least that many through it.
    private long _throughSinceTrim;

    private const int TrimThreshold = 4096;

    // What Kestrel reads (copied at completion).
    private SslProtocols _protocol;
    private TlsCipherSuite? _cipherSuite;
    private string _hostName = string.Empty;
    private ReadOnlyMemory<byte> _applicationProtocol;

    private enum Phase : byte
    {
        Handshaking,
        Established,
        // Disposed on the Close event.
        Closed,
    }

    public TlsConnectionLayer(MegaPipeHttpsEndpoint endpoint, TlsServerContext context, TlsSendBuffers buffers, object connection)
    {
        Endpoint = endpoint;
        _buffers = buffers;
        _session = context.CreateSession();
        // The certificate selector gets the connection, as Kestrel's does.
        _session.State = connection;
    }

    public MegaPipeHttpsEndpoint Endpoint { get; }

    // ---- the deadline (TlsDeadlines' links): the handshake timeout, then the idle trim ----
    public long Deadline { get; set; }
    public TlsDeadlines.DeadlineList? DeadlineList { get; set; }
    public TlsConnectionLayer? DeadlinePrevious { get; set; }
    public TlsConnectionLayer? DeadlineNext { get; set; }
    // Called when the handshake deadline passed (true), or when the channel stops with the handshake unfinished
    // (false). Set by the connection.
    public Action<bool>? HandshakeAbandoned { get; set; }

    // How long an established connection stays quiet before its grown memory BIOs are given back. Trimming after every
    // exchange made a keep-alive connection with 6 KiB responses free and regrow its write BIO per request.
    public static readonly TimeSpan IdleTrimDelay = TimeSpan.FromSeconds(1);

    // Exchanges (feeds and sends) so far, and their number when the trim was scheduled: a trim that finds it moved
    // waits another delay instead (the connection is not idle).
    private long _activity;
    private long _activityAtTrimSchedule;

    // TlsDeadlines: this connection's deadline passed.
    public void OnDeadline(bool stopping)
    {
        if (_phase == Phase.Handshaking)
        {
            HandshakeAbandoned?.Invoke(!stopping);
        }
        else if (!stopping && _phase == Phase.Established)
        {
            TrimWhenQuiet();
        }
    }

    public bool IsHandshakeComplete => _phase == Phase.Established;

    // A send of this connection is in flight (one at a time: the kernel could reorder two).
    public bool SendInFlight => _sending is not null;

    // The send in flight carries no application data.
    public bool SendingStandalone => _sendingStandalone;

    // The output pipe's read completed while a standalone send was in flight; it is processed when that send completes.
    public bool OutputWaiting { get; set; }

    // A graceful close waits for the standalone send in flight (close_notify or an alert), then closes.
    public bool CloseAfterSend { get; set; }

    public bool HasPendingOutput => _session.PendingOutputLength > 0;

    public string? FailureReason => _session.FailureReason;

    public void Feed(ReadOnlySpan<byte> ciphertext)
    {
        _throughSinceTrim += ciphertext.Length;
        _activity++;
        _session.Feed(ciphertext);
    }

    public void CompleteInput() => _session.CompleteInput();

    /// <summary>Advances the handshake; at completion, copies what Kestrel's features report.</summary>
    public TlsHandshakeStatus Handshake()
    {
        Debug.Assert(_phase == Phase.Handshaking, "the handshake runs once");
        TlsHandshakeStatus status = _session.Handshake();
        if (status == TlsHandshakeStatus.Completed)
        {
            _phase = Phase.Established;
            _protocol = _session.Protocol;
            _cipherSuite = _session.CipherSuite;
            _hostName = _session.HostName ?? string.Empty;
            _applicationProtocol = _session.ApplicationProtocol;
            ClientCertificate = _session.RemoteCertificate;
            CipherSuiteName = _session.CipherSuiteName;
            IsResumed = _session.IsResumed;
        }
        return status;
    }

    public string? CipherSuiteName { get; private set; }

    public bool IsResumed { get; private set; }

    public TlsReadStatus Decrypt(Span<byte> destination, out int written) => _session.Decrypt(destination, out written);

    /// <summary>
    /// Encrypts as much of <paramref name="plaintext"/> as one send takes (after any pending TLS output) into a buffer
    /// of the channel's pool; with <paramref name="closeAfter"/>, when all of it fits, close_notify follows in the same
    /// send. Returns the ciphertext to send, or empty when the session failed (see <see cref="FailureReason"/>).
    /// </summary>
    public ReadOnlyMemory<byte> EncryptForSend(in ReadOnlySequence<byte> plaintext, bool closeAfter, out long consumed)
    {
        Debug.Assert(_sending is null, "one send in flight");
        // Room for the records (each adds at most MaxRecordOverhead), what is pending, and close_notify.
        long records = 1 + (plaintext.Length / TlsSession.MaxRecordPlaintext);
        byte[] buffer = _buffers.Rent(plaintext.Length + _session.PendingOutputLength + (records + (closeAfter ? 1 : 0)) * TlsSession.MaxRecordOverhead);
        TlsWriteStatus status = _session.Encrypt(plaintext, buffer, out consumed, out int written);
        if (status == TlsWriteStatus.Failed)
        {
            _buffers.Return(buffer);
            consumed = 0;
            return default;
        }
        if (closeAfter && status == TlsWriteStatus.Completed && consumed == plaintext.Length)
        {
            // The application's last bytes: close_notify rides in the same send, before the FIN.
            _session.Shutdown();
            written += _session.TakeOutput(buffer.AsSpan(written));
        }
        _sending = buffer;
        _sendingStandalone = false;
        _throughSinceTrim += written;
        _activity++;
        return buffer.AsMemory(0, written);
    }

    /// <summary>Pending TLS output (a flight, tickets, an alert, close_notify) as one standalone send; empty when none is pending.</summary>
    public ReadOnlyMemory<byte> TakeStandaloneOutput()
    {
        Debug.Assert(_sending is null, "one send in flight");
        int pending = _session.PendingOutputLength;
        if (pending == 0)
        {
            return default;
        }
        byte[] buffer = _buffers.Rent(pending);
        int written = _session.TakeOutput(buffer);
        _sending = buffer;
        _sendingStandalone = true;
        _throughSinceTrim += written;
        return buffer.AsMemory(0, written);
    }

    /// <summary>Queues close_notify if the session can still send one; false when it was sent already or cannot be.</summary>
    public bool TryShutdown()
    {
        if (_phase != Phase.Established || _session.CloseNotifySent || _session.FailureReason is not null)
        {
            return false;
        }
        _session.Shutdown();
        return _session.PendingOutputLength > 0;
    }

    /// <summary>The send in flight completed: its buffer goes back to the pool.</summary>
    public void EndSend()
    {
        Debug.Assert(_sending is not null, "a send completed with none in flight");
        _buffers.Return(_sending!);
        _sending = null;
        _sendingStandalone = false;
    }

    /// <summary>
    /// The connection may go idle (nothing to send, waiting for the peer): when enough bytes went through its memory
    /// BIOs for one to have grown, a trim is scheduled for <see cref="IdleTrimDelay"/> from now, unless one is. The
    /// usual small request and response cost nothing here; a busy connection is not trimmed between its requests.
    /// </summary>
    public void TrimIfIdle()
    {
        if (_throughSinceTrim > TrimThreshold && DeadlineList is null && _phase == Phase.Established && Deadlines is { } deadlines)
        {
            _activityAtTrimSchedule = _activity;
            deadlines.Add(this, IdleTrimDelay, Environment.TickCount64);
        }
    }

    // The channel's deadlines (set by the connection).
    public TlsDeadlines? Deadlines { get; set; }

    // The trim's deadline: quiet since it was scheduled, the grown BIOs go; busy, it waits another delay.
    private void TrimWhenQuiet()
    {
        if (_activity != _activityAtTrimSchedule || _sending is not null)
        {
            _activityAtTrimSchedule = _activity;
            Deadlines!.Add(this, IdleTrimDelay, Environment.TickCount64);
            return;
        }
        _throughSinceTrim = 0;
        _session.TrimBuffers();
    }

    /// <summary>The connection's Close event: the session is freed; nothing of the connection runs after this.</summary>
    public void Dispose()
    {
        if (_phase == Phase.Closed)
        {
            return;
        }
        _phase = Phase.Closed;
        // A send the close cancelled: the Close event comes after the kernel let go of its buffer.
        if (_sending is not null)
        {
            _buffers.Return(_sending);
            _sending = null;
        }
        _session.Dispose();
    }

    // ---- ITlsConnectionFeature ----
    public X509Certificate2? ClientCertificate { get; set; }

    public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult(ClientCertificate);

    // ---- ITlsApplicationProtocolFeature ----
    public ReadOnlyMemory<byte> ApplicationProtocol => _applicationProtocol;

    // ---- ITlsHandshakeFeature ----
    public SslProtocols Protocol => _protocol;

    public TlsCipherSuite? NegotiatedCipherSuite => _cipherSuite;

    // The SNI host name the client sent, or empty (Kestrel fills it only for a ServerCertificateSelector; here always).
    public string HostName => _hostName;

#pragma warning disable SYSLIB0058 // the obsolete algorithm properties are part of the interface; derived from the suite
    public CipherAlgorithmType CipherAlgorithm => CipherSuiteName switch
    {
        { } n when n.Contains("AES_128", StringComparison.Ordinal) => CipherAlgorithmType.Aes128,
        { } n when n.Contains("AES_256", StringComparison.Ordinal) => CipherAlgorithmType.Aes256,
        _ => CipherAlgorithmType.None,
    };

    public int CipherStrength => CipherSuiteName switch
    {
        { } n when n.Contains("AES_128", StringComparison.Ordinal) => 128,
        { } n when n.Contains("AES_256", StringComparison.Ordinal) || n.Contains("CHACHA20", StringComparison.Ordinal) => 256,
        _ => 0,
    };

    public HashAlgorithmType HashAlgorithm => CipherSuiteName switch
    {
        { } n when n.EndsWith("SHA256", StringComparison.Ordinal) => HashAlgorithmType.Sha256,
        { } n when n.EndsWith("SHA384", StringComparison.Ordinal) => HashAlgorithmType.Sha384,
        _ => HashAlgorithmType.None,
    };

    public int HashStrength => HashAlgorithm switch
    {
        HashAlgorithmType.Sha256 => 256,
        HashAlgorithmType.Sha384 => 384,
        _ => 0,
    };

    // Every suite the channels accept uses ephemeral (EC)DHE.
    public ExchangeAlgorithmType KeyExchangeAlgorithm => ExchangeAlgorithmType.DiffieHellman;

    public int KeyExchangeStrength => 0;
#pragma warning restore SYSLIB0058
}
