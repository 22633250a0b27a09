using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Soak;

// How reading one response ended.
public enum ReadOutcome
{
    // A complete response (status line, headers and the whole body) arrived.
    Complete,
    // The server closed the connection (FIN) before the first byte of this response.
    ClosedBeforeResponse,
    // The server closed the connection (FIN) after some but not all bytes of this response.
    ClosedMidResponse,
    // The connection was reset (RST: ECONNRESET or EPIPE).
    Reset,
    // Neither a complete response nor a close within the timeout.
    Timeout,
    // Bytes that are not a valid HTTP/1.1 response.
    Malformed,
    // Any other socket error.
    Error,
}

public sealed record Response(ReadOutcome Outcome, int Status, bool ConnectionClose, long BytesReceived, string? Detail)
{
    public bool IsComplete => Outcome == ReadOutcome.Complete;
}

// An HTTP/1.1 client connection on a socket, over TLS when Tls is set (--tls): writes requests, reads
// and checks responses (Content-Length or chunked bodies), and closes with FIN or with RST (SO_LINGER 0).
public sealed class HttpClientConnection : IDisposable
{
    private readonly Socket _socket;
    // The TLS stream over _socket (null for plain HTTP).
    private readonly SslStream? _tls;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private HttpClientConnection(Socket socket, SslStream? tls)
    {
        _socket = socket;
        _tls = tls;
    }

    // HTTPS: every connection completes a TLS handshake first (the server's self-signed certificate is accepted).
    public static bool Tls { get; set; }

    private static SslClientAuthenticationOptions TlsOptions => new()
    {
        TargetHost = "localhost",
        RemoteCertificateValidationCallback = (_, _, _, _) => true,
        ApplicationProtocols = [SslApplicationProtocol.Http11],
    };

    // A raw TCP connection and a TLS handshake started on it, to be reset while it runs (the handshake's task is returned).
    public static async Task<(Socket Socket, Task Handshake)> StartHandshakeAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        return (socket, tls.AuthenticateAsClientAsync(TlsOptions, cancellationToken));
    }

    // The body of the last complete response, when it was asked to be kept.
    public MemoryStream Body { get; } = new();

    // Complete responses read on this connection.
    public int ResponsesRead { get; private set; }

    public static async Task<HttpClientConnection> ConnectAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        if (!Tls)
        {
            return new HttpClientConnection(socket, null);
        }
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        try
        {
            await tls.AuthenticateAsClientAsync(TlsOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            // A reset, or the server closing, during the handshake: reported as the socket error a plain
            // connection would see, so that callers judge both alike. A TLS alert stays an AuthenticationException.
            throw e.InnerException as SocketException ?? new SocketException((int)SocketError.ConnectionReset);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            throw;
        }
        return new HttpClientConnection(socket, tls);
    }

    public static byte[] FormatRequest(string path, bool close = false) =>
        Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: soak\r\n{(close ? "Connection: close\r\n" : "")}\r\n");

    // Sends bytes; false when the connection was reset or closed under us.
    public async Task<bool> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            if (_tls is not null)
            {
                await _tls.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                await _tls.FlushAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
            while (!data.IsEmpty)
            {
                int n = await _socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                data = data[n..];
            }
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException e) when (e.InnerException is SocketException)
        {
            return false;
        }
    }

    // Reads one response. With keepBody the body is left in Body; stopAfterBody stops reading (Complete)
    // once that many body bytes have arrived, leaving the rest unread for a reset mid-response.
    public async Task<Response> ReadResponseAsync(TimeSpan timeout, bool keepBody = false, long stopAfterBody = long.MaxValue)
    {
        using var cts = new CancellationTokenSource(timeout);
        // Bytes of this response already buffered (pipelined behind the previous one) count as received.
        long received = _end - _start;
        int status = 0;
        bool close = false;
        Body.SetLength(0);
        try
        {
            // Status line and headers.
            int headerEnd;
            while ((headerEnd = IndexOfHeaderEnd()) < 0)
            {
                if (_end - _start >= 16 * 1024)
                {
                    return new Response(ReadOutcome.Malformed, 0, false, received, "headers over 16 KiB");
                }
                int n = await FillAsync(cts.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return new Response(received == 0 ? ReadOutcome.ClosedBeforeResponse : ReadOutcome.ClosedMidResponse, 0, false, received, "EOF in headers");
                }
                received += n;
            }
            string head = Encoding.ASCII.GetString(_buffer, _start, headerEnd - _start);
            _start = headerEnd + 4;
            string[] lines = head.Split("\r\n");
            string[] statusParts = lines[0].Split(' ', 3);
            if (statusParts.Length < 2 || !statusParts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(statusParts[1], out status))
            {
                return new Response(ReadOutcome.Malformed, 0, false, received, $"status line '{lines[0]}'");
            }
            long contentLength = -1;
            bool chunked = false;
            foreach (string line in lines.AsSpan(1))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0)
                {
                    return new Response(ReadOutcome.Malformed, status, false, received, $"header line '{line}'");
                }
                string name = line[..colon].Trim();
                string value = line[(colon + 1)..].Trim();
                if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    if (!long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out contentLength))
                    {
                        return new Response(ReadOutcome.Malformed, status, false, received, $"Content-Length '{value}'");
                    }
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
                }
                else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    close = value.Contains("close", StringComparison.OrdinalIgnoreCase);
                }
            }
            if (chunked)
            {
                long total = 0;
                while (true)
                {
                    string? sizeLine = await ReadLineAsync(cts.Token, n => received += n).ConfigureAwait(false);
                    if (sizeLine is null)
                    {
                        return new Response(ReadOutcome.ClosedMidResponse, status, close, received, "EOF in chunk size");
                    }
                    int semicolon = sizeLine.IndexOf(';');
                    if (!long.TryParse(semicolon >= 0 ? sizeLine[..semicolon] : sizeLine, System.Globalization.NumberStyles.HexNumber, null, out long size))
                    {
                        return new Response(ReadOutcome.Malformed, status, close, received, $"chunk size '{sizeLine}'");
                    }
                    if (size == 0)
                    {
                        // Trailers, up to the empty line.
                        string? trailer;
                        while ((trailer = await ReadLineAsync(cts.Token, n => received += n).ConfigureAwait(false)) is { Length: > 0 })
                        {
                        }
                        if (trailer is null)
                        {
                            return new Response(ReadOutcome.ClosedMidResponse, status, close, received, "EOF in trailers");
                        }
                        break;
                    }
                    var (ok, n2) = await ReadBodyAsync(size, keepBody, cts.Token).ConfigureAwait(false);
                    received += n2;
                    total += size;
                    if (!ok)
                    {
                        return new Response(ReadOutcome.ClosedMidResponse, status, close, received, "EOF in chunk");
                    }
                    string? crlf = await ReadLineAsync(cts.Token, n => received += n).ConfigureAwait(false);
                    if (crlf is null)
                    {
                        return new Response(ReadOutcome.ClosedMidResponse, status, close, received, "EOF after chunk");
                    }
                    if (crlf.Length != 0)
                    {
                        return new Response(ReadOutcome.Malformed, status, close, received, "chunk not followed by CRLF");
                    }
                    if (total >= stopAfterBody)
                    {
                        break;
                    }
                }
            }
            else if (contentLength >= 0)
            {
                var (ok, n) = await ReadBodyAsync(Math.Min(contentLength, stopAfterBody), keepBody, cts.Token).ConfigureAwait(false);
                received += n;
                if (!ok)
                {
                    return new Response(ReadOutcome.ClosedMidResponse, status, close, received, $"EOF in body of {contentLength} bytes");
                }
            }
            else if (status is not (204 or 304) && status >= 200)
            {
                return new Response(ReadOutcome.Malformed, status, close, received, "neither Content-Length nor chunked");
            }
            ResponsesRead++;
            return new Response(ReadOutcome.Complete, status, close, received, null);
        }
        catch (OperationCanceledException)
        {
            return new Response(ReadOutcome.Timeout, status, close, received, $"no response or close within {timeout.TotalSeconds:F0} s");
        }
        catch (InvalidDataException e)
        {
            return new Response(ReadOutcome.Malformed, status, close, received, e.Message);
        }
        catch (Exception e) when (SocketErrorOf(e) is System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.Shutdown or System.Net.Sockets.SocketError.ConnectionAborted)
        {
            return new Response(ReadOutcome.Reset, status, close, received, SocketErrorOf(e).ToString());
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            // Any other socket error, or a TLS failure (an alert, a record that does not decrypt).
            return new Response(ReadOutcome.Error, status, close, received, e.Message);
        }
    }

    // The socket error under a socket or TLS exception, or null.
    private static System.Net.Sockets.SocketError? SocketErrorOf(Exception e) => (e as SocketException ?? e.InnerException as SocketException)?.SocketErrorCode;

    // Reads until EOF, RST or timeout, expecting no more bytes: true when the server closed cleanly.
    public async Task<ReadOutcome> ReadEndAsync(TimeSpan timeout)
    {
        if (_end > _start)
        {
            return ReadOutcome.Malformed;
        }
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            int n = await FillAsync(cts.Token).ConfigureAwait(false);
            return n == 0 ? ReadOutcome.ClosedBeforeResponse : ReadOutcome.Malformed;
        }
        catch (OperationCanceledException)
        {
            return ReadOutcome.Timeout;
        }
        catch (Exception e) when (SocketErrorOf(e) is System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.Shutdown or System.Net.Sockets.SocketError.ConnectionAborted)
        {
            return ReadOutcome.Reset;
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            return ReadOutcome.Error;
        }
    }

    // Closes with RST: SO_LINGER on with a zero timeout.
    public void Reset()
    {
        try
        {
            _socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }
        _socket.Dispose();
    }

    public void Dispose()
    {
        _tls?.Dispose();
        _socket.Dispose();
    }

    private ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        => _tls is null ? _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) : _tls.ReadAsync(buffer, cancellationToken);

    private int IndexOfHeaderEnd() => _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8) is int i and >= 0 ? _start + i : -1;

    // Appends received bytes to the buffer (compacting it first); 0 at EOF.
    private async Task<int> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        int n = await ReceiveAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
        _end += n;
        return n;
    }

    private async Task<string?> ReadLineAsync(CancellationToken cancellationToken, Action<int> onReceived)
    {
        int eol;
        while ((eol = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
        {
            if (_end - _start >= 1024)
            {
                throw new InvalidDataException("line over 1 KiB");
            }
            int n = await FillAsync(cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return null;
            }
            onReceived(n);
        }
        string line = Encoding.ASCII.GetString(_buffer, _start, eol);
        _start += eol + 2;
        return line;
    }

    // Consumes count body bytes; false on EOF first. Returns the bytes received from the socket.
    private async Task<(bool Ok, long Received)> ReadBodyAsync(long count, bool keep, CancellationToken cancellationToken)
    {
        long received = 0;
        while (count > 0)
        {
            if (_end == _start)
            {
                _start = _end = 0;
                int n = await ReceiveAsync(_buffer.AsMemory(), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return (false, received);
                }
                _end = n;
                received += n;
            }
            int take = (int)Math.Min(count, _end - _start);
            if (keep)
            {
                Body.Write(_buffer, _start, take);
            }
            _start += take;
            count -= take;
        }
        return (true, received);
    }
}
