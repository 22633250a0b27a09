using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace MegaPipe.Tls.Tests.Infrastructure;

// A small loopback server that pumps real sockets through a TlsSession per connection, as the transport
// will: receive -> Feed -> Handshake / Decrypt; plaintext echoed back -> Encrypt -> one send per batch;
// close_notify before the FIN. A plaintext chunk ending in "bye\n" makes the server close (close_notify)
// after echoing it. Each connection's outcome is recorded for the test to check.
internal sealed class TlsEchoServer : IAsyncDisposable
{
    private static readonly byte[] s_bye = Encoding.ASCII.GetBytes("bye\n");

    private readonly TlsServerContext _context;
    private readonly bool _ownsContext;
    private readonly Socket _listener;
    private readonly Channel<ConnectionResult> _results = Channel.CreateUnbounded<ConnectionResult>();
    private readonly ConcurrentDictionary<Task, bool> _connections = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    public TlsEchoServer(TlsServerOptions options)
        : this(new TlsServerContext(options), ownsContext: true)
    {
    }

    public TlsEchoServer(TlsServerContext context, bool ownsContext = false)
    {
        _context = context;
        _ownsContext = ownsContext;
        _listener = Loopback.Listen(1024);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    public TlsServerContext Context => _context;

    /// <summary>The next connection's outcome, once it has ended.</summary>
    public async Task<ConnectionResult> NextResultAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Long);
        return await _results.Reader.ReadAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        try
        {
            await _acceptLoop;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(_connections.Keys).WaitAsync(TestTimeouts.Long);
        if (_ownsContext)
        {
            _context.Dispose();
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket = await _listener.AcceptAsync(_stop.Token);
            socket.NoDelay = true;
            Task connection = Task.Run(() => ServeAsync(socket));
            _connections.TryAdd(connection, true);
            _ = connection.ContinueWith(t => _connections.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var result = new ConnectionResult();
        byte[] receive = new byte[16 * 1024];
        byte[] send = new byte[4 * TlsSession.RecommendedOutputBufferSize];
        byte[] plaintext = new byte[TlsSession.MaxRecordPlaintext];
        using TlsSession session = _context.CreateSession();
        try
        {
            while (true)
            {
                TlsHandshakeStatus status = session.Handshake();
                await FlushAsync(socket, session, send);
                if (status == TlsHandshakeStatus.Completed)
                {
                    break;
                }
                if (status == TlsHandshakeStatus.Failed)
                {
                    result.Handshake = TlsHandshakeStatus.Failed;
                    result.FailureReason = session.FailureReason;
                    result.End = ConnectionEnd.Failed;
                    return;
                }
                await ReceiveAsync(socket, session, receive);
            }
            result.Handshake = TlsHandshakeStatus.Completed;
            result.Protocol = session.Protocol;
            result.CipherSuiteName = session.CipherSuiteName;
            result.CipherSuite = session.CipherSuite;
            result.HostName = session.HostName;
            result.ApplicationProtocol = Encoding.ASCII.GetString(session.ApplicationProtocol.Span);
            result.IsResumed = session.IsResumed;
            result.ClientCertificateSubject = session.RemoteCertificate?.Subject;
            await EchoAsync(socket, session, receive, send, plaintext, result);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            result.FailureReason ??= "socket: " + e.Message;
            result.End = ConnectionEnd.Failed;
        }
        finally
        {
            result.FailureReason ??= session.FailureReason;
            result.ErrorQueueEmptyAfterEnd = Interop.ERR_get_error() == 0;
            socket.Dispose();
            _results.Writer.TryWrite(result);
        }
    }

    private static async Task EchoAsync(Socket socket, TlsSession session, byte[] receive, byte[] send, byte[] plaintext, ConnectionResult result)
    {
        while (true)
        {
            TlsReadStatus status = session.Decrypt(plaintext, out int read);
            if (read > 0)
            {
                await EncryptAndSendAsync(socket, session, plaintext.AsMemory(0, read), send);
                result.BytesEchoed += read;
                if (plaintext.AsSpan(0, read).EndsWith(s_bye))
                {
                    session.Shutdown();
                    await FlushAsync(socket, session, send);
                    socket.Shutdown(SocketShutdown.Send);
                }
            }
            // Post-handshake messages (a TLS 1.3 key update) may have left something to send.
            await FlushAsync(socket, session, send);
            switch (status)
            {
                case TlsReadStatus.NeedMoreInput:
                    await ReceiveAsync(socket, session, receive);
                    break;
                case TlsReadStatus.DestinationFull:
                    break;
                case TlsReadStatus.Closed:
                    result.End = ConnectionEnd.CloseNotify;
                    if (!session.CloseNotifySent)
                    {
                        session.Shutdown();
                        await FlushAsync(socket, session, send);
                        socket.Shutdown(SocketShutdown.Send);
                    }
                    return;
                case TlsReadStatus.ClosedWithoutCloseNotify:
                    result.End = ConnectionEnd.WithoutCloseNotify;
                    return;
                case TlsReadStatus.Failed:
                    result.End = ConnectionEnd.Failed;
                    result.FailureReason = session.FailureReason;
                    await FlushAsync(socket, session, send);
                    return;
            }
        }
    }

    private static async Task EncryptAndSendAsync(Socket socket, TlsSession session, ReadOnlyMemory<byte> data, byte[] send)
    {
        while (true)
        {
            TlsWriteStatus status = session.Encrypt(data.Span, send, out int consumed, out int written);
            if (written > 0)
            {
                await SendAllAsync(socket, send.AsMemory(0, written));
            }
            data = data[consumed..];
            if (status == TlsWriteStatus.Completed)
            {
                return;
            }
            if (status == TlsWriteStatus.Failed)
            {
                throw new IOException("encrypt failed: " + session.FailureReason);
            }
        }
    }

    private static async Task ReceiveAsync(Socket socket, TlsSession session, byte[] receive)
    {
        int received;
        try
        {
            received = await socket.ReceiveAsync(receive, SocketFlags.None);
        }
        catch (SocketException)
        {
            // A reset ends the stream like a FIN; the session decides whether that was clean.
            received = 0;
        }
        if (received == 0)
        {
            session.CompleteInput();
        }
        else
        {
            session.Feed(receive.AsSpan(0, received));
        }
    }

    private static async Task FlushAsync(Socket socket, TlsSession session, byte[] send)
    {
        while (session.PendingOutputLength > 0)
        {
            int taken = session.TakeOutput(send);
            try
            {
                await SendAllAsync(socket, send.AsMemory(0, taken));
            }
            catch (SocketException)
            {
                // The peer is gone: what was pending (an alert) cannot be delivered; the outcome is already recorded.
                return;
            }
        }
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            int sent = await socket.SendAsync(data, SocketFlags.None);
            data = data[sent..];
        }
    }
}
