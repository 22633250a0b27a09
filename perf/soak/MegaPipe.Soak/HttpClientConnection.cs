using System.Net;
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

// A plain HTTP/1.1 client connection on a socket: writes requests, reads and checks responses
// (Content-Length or chunked bodies), and closes with FIN or with RST (SO_LINGER 0).
public sealed class HttpClientConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private HttpClientConnection(Socket socket) => _socket = socket;

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
        return new HttpClientConnection(socket);
    }

    public static byte[] FormatRequest(string path, bool close = false) =>
        Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: soak\r\n{(close ? "Connection: close\r\n" : "")}\r\n");

    // Sends bytes; false when the connection was reset or closed under us.
    public async Task<bool> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
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
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted)
        {
            return new Response(ReadOutcome.Reset, status, close, received, e.SocketErrorCode.ToString());
        }
        catch (SocketException e)
        {
            return new Response(ReadOutcome.Error, status, close, received, e.SocketErrorCode.ToString());
        }
    }

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
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted)
        {
            return ReadOutcome.Reset;
        }
        catch (SocketException)
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

    public void Dispose() => _socket.Dispose();

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
        int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
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
                int n = await _socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, cancellationToken).ConfigureAwait(false);
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
