// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// An HTTP/1.1 client on a plain socket (or TLS over it): writes whatever bytes a test gives it
/// (pipelining, partial bodies, request targets HttpClient would normalize, such as ".." and
/// "%2e"), parses responses (Content-Length, chunked, or to the end of the connection), and can
/// reset the connection or report the server's reset.
/// </summary>
public sealed partial class RawHttpConnection : IDisposable
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    // Unconsumed received bytes are _buffer[_start.._end].
    private int _start;
    private int _end;
    // The most one receive may take (tests of a slow reader lower it).
    private int _readChunkSize = int.MaxValue;

    private RawHttpConnection(Socket socket, SslStream? tls = null)
    {
        Socket = socket;
        Tls = tls;
    }

    public Socket Socket { get; }

    /// <summary>The TLS stream over <see cref="Socket"/> of a connection made by <see cref="ConnectTlsAsync"/>.</summary>
    public SslStream? Tls { get; }

    /// <summary>Connects and completes a TLS handshake; requests and responses then go through it.</summary>
    public static Task<RawHttpConnection> ConnectTlsAsync(EndPoint endPoint, SslClientAuthenticationOptions options, CancellationToken cancellationToken = default)
        => ConnectTlsAsync(endPoint, options, TestTimeouts.Default, cancellationToken);

    /// <summary>The same, with the handshake allowed <paramref name="handshakeTimeout"/>.</summary>
    public static async Task<RawHttpConnection> ConnectTlsAsync(EndPoint endPoint, SslClientAuthenticationOptions options, TimeSpan handshakeTimeout, CancellationToken cancellationToken = default)
    {
        RawHttpConnection plain = await ConnectAsync(endPoint, cancellationToken);
        var tls = new SslStream(new NetworkStream(plain.Socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(handshakeTimeout);
            await tls.AuthenticateAsClientAsync(options, timeout.Token);
        }
        catch
        {
            await tls.DisposeAsync();
            plain.Dispose();
            throw;
        }
        return new RawHttpConnection(plain.Socket, tls);
    }

    public static Task<RawHttpConnection> ConnectAsync(EndPoint endPoint, CancellationToken cancellationToken = default)
        => ConnectAsync(endPoint, receiveBufferSize: null, cancellationToken);

    /// <summary>
    /// Connects (TCP with Nagle off, or a Unix socket); <paramref name="receiveBufferSize"/> (set
    /// before connecting, so the window is small from the SYN on) caps the client's kernel buffer.
    /// </summary>
    public static async Task<RawHttpConnection> ConnectAsync(EndPoint endPoint, int? receiveBufferSize, CancellationToken cancellationToken = default)
    {
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (receiveBufferSize is int size)
            {
                socket.ReceiveBufferSize = size;
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TestTimeouts.Default);
            await socket.ConnectAsync(endPoint, timeout.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RawHttpConnection(socket);
    }

    /// <summary>
    /// Sends <paramref name="method"/> <paramref name="target"/> exactly as written on a new
    /// connection with <c>Connection: close</c> and reads the response to the end of the connection.
    /// </summary>
    public static Task<RawHttpResponse> SendOnceAsync(EndPoint endPoint, string target, string method = "GET", params string[] headers)
        => SendOnceAsync(endPoint, TestTimeouts.Default, target, method, headers);

    /// <summary>The same, the response awaited for up to <paramref name="timeout"/> (a server that starts on its first connection).</summary>
    public static async Task<RawHttpResponse> SendOnceAsync(EndPoint endPoint, TimeSpan timeout, string target, string method = "GET", params string[] headers)
    {
        using RawHttpConnection connection = await ConnectAsync(endPoint);
        await connection.SendAsync($"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{string.Concat(headers.Select(h => h + "\r\n"))}\r\n");
        return await connection.ReadResponseToEndAsync(head: method == "HEAD", timeout);
    }

    public static string Get(string path, string? extraHeaders = null)
        => $"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extraHeaders}\r\n";

    public static string Post(string path, string body)
        => $"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}";

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> data)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        if (Tls is not null)
        {
            await Tls.WriteAsync(data, timeout.Token);
            await Tls.FlushAsync(timeout.Token);
            return;
        }
        while (!data.IsEmpty)
        {
            int sent = await Socket.SendAsync(data, SocketFlags.None, timeout.Token);
            data = data[sent..];
        }
    }

    /// <summary>Sends one request and reads its response.</summary>
    public async Task<RawHttpResponse> RequestAsync(string request)
    {
        await SendAsync(request);
        return await ReadResponseAsync();
    }

    /// <summary>Reads one response; <paramref name="readChunkSize"/> caps each receive (a slow reader).</summary>
    public async Task<RawHttpResponse> ReadResponseAsync(int readChunkSize = int.MaxValue)
    {
        _readChunkSize = readChunkSize;
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        CancellationToken token = timeout.Token;
        (int status, IReadOnlyDictionary<string, string> headers) = await ReadHeadAsync(token);

        byte[] body;
        if (headers.TryGetValue("Transfer-Encoding", out string? encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var content = new MemoryStream();
            while (true)
            {
                string sizeLine = await ReadLineAsync(token) ?? throw new IOException("The connection closed inside a chunked body.");
                int size = int.Parse(sizeLine.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    // Trailers (none expected) end with an empty line.
                    while ((await ReadLineAsync(token))?.Length > 0)
                    {
                    }
                    break;
                }
                content.Write(await ReadExactlyAsync(size, token));
                if ((await ReadLineAsync(token))?.Length != 0)
                {
                    throw new InvalidDataException("A chunk is not followed by CRLF.");
                }
            }
            body = content.ToArray();
        }
        else if (headers.TryGetValue("Content-Length", out string? length))
        {
            body = await ReadExactlyAsync(int.Parse(length, CultureInfo.InvariantCulture), token);
        }
        else
        {
            body = status is 204 or 304 ? [] : await ReadToEndAsync(token);
        }
        return new RawHttpResponse(status, headers, body);
    }

    /// <summary>
    /// Reads everything until the server closes the connection and parses it as one response: the
    /// body is all that follows the header, which must match its Content-Length (unless
    /// <paramref name="head"/>: a HEAD response states the length of a body it does not send).
    /// </summary>
    public async Task<RawHttpResponse> ReadResponseToEndAsync(bool head = false, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestTimeouts.Default);
        (int status, IReadOnlyDictionary<string, string> headers) = await ReadHeadAsync(cancel.Token);
        byte[] body = await ReadToEndAsync(cancel.Token);
        if (!head && headers.TryGetValue("Content-Length", out string? length))
        {
            Assert.Equal(long.Parse(length, CultureInfo.InvariantCulture), body.Length);
        }
        return new RawHttpResponse(status, headers, body);
    }

    /// <summary>Reads a response's status line and headers (up to the empty line), leaving its body unread.</summary>
    public async Task<(int StatusCode, IReadOnlyDictionary<string, string> Headers)> ReadResponseHeadAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        return await ReadHeadAsync(timeout.Token);
    }

    /// <summary>Reads and discards at least <paramref name="count"/> bytes.</summary>
    public async Task SkipAsync(long count)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (count > 0)
        {
            if (_start == _end && !await FillAsync(timeout.Token))
            {
                throw new IOException("The connection closed early.");
            }
            int take = (int)Math.Min(count, _end - _start);
            _start += take;
            count -= take;
        }
    }

    /// <summary>
    /// Waits until the server closes the connection (FIN or RST); says whether it was a reset and
    /// how many bytes arrived first.
    /// </summary>
    public async Task<(bool Reset, int Received)> WaitForCloseAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        int received = _end - _start;
        _start = _end = 0;
        try
        {
            while (true)
            {
                int read = await ReceiveAsync(_buffer.AsMemory(), timeout.Token);
                if (read == 0)
                {
                    return (false, received);
                }
                received += read;
            }
        }
        catch (Exception e) when (IsReset(e))
        {
            return (true, received);
        }
    }

    /// <summary>Closes with SO_LINGER 0: the kernel sends RST instead of FIN.</summary>
    public void Reset()
    {
        Socket.LingerState = new LingerOption(true, 0);
        Socket.Dispose();
    }

    public void Dispose()
    {
        Tls?.Dispose();
        Socket.Dispose();
    }

    // A reset seen by a plain socket (SocketException) or through TLS (an IOException around it).
    private static bool IsReset(Exception e)
        => (e as SocketException ?? e.InnerException as SocketException)?.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted;

    private ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken token)
        => Tls is null ? Socket.ReceiveAsync(buffer, SocketFlags.None, token) : Tls.ReadAsync(buffer, token);

    private async Task<bool> FillAsync(CancellationToken token)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        int read = await ReceiveAsync(_buffer.AsMemory(_end, Math.Min(_buffer.Length - _end, _readChunkSize)), token);
        _end += read;
        return read > 0;
    }

    private async Task<(int StatusCode, IReadOnlyDictionary<string, string> Headers)> ReadHeadAsync(CancellationToken token)
    {
        string statusLine = await ReadLineAsync(token) ?? throw new IOException("The connection closed before a response.");
        string[] parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || parts[0] != "HTTP/1.1")
        {
            throw new InvalidDataException($"Not an HTTP/1.1 status line: '{statusLine}'.");
        }
        int status = int.Parse(parts[1], CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        while (true)
        {
            string line = await ReadLineAsync(token) ?? throw new IOException("The connection closed inside the headers.");
            if (line.Length == 0)
            {
                return (status, headers);
            }
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
    }

    // Header bytes as Latin-1: every byte a character of its own, so what a hostile server sent shows as it was.
    private async Task<string?> ReadLineAsync(CancellationToken token)
    {
        var line = new StringBuilder();
        while (true)
        {
            int index = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (index >= 0)
            {
                line.Append(Encoding.Latin1.GetString(_buffer, _start, index - _start));
                _start = index + 1;
                if (line.Length > 0 && line[^1] == '\r')
                {
                    line.Length--;
                }
                return line.ToString();
            }
            line.Append(Encoding.Latin1.GetString(_buffer, _start, _end - _start));
            _start = _end;
            if (!await FillAsync(token))
            {
                return line.Length == 0 ? null : throw new IOException("The connection closed inside a line.");
            }
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken token)
    {
        byte[] result = new byte[count];
        int filled = 0;
        while (filled < count)
        {
            if (_start == _end && !await FillAsync(token))
            {
                throw new IOException($"The connection closed after {filled} of {count} body bytes.");
            }
            int take = Math.Min(count - filled, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, filled, take);
            _start += take;
            filled += take;
        }
        return result;
    }

    private async Task<byte[]> ReadToEndAsync(CancellationToken token)
    {
        var content = new MemoryStream();
        while (true)
        {
            content.Write(_buffer, _start, _end - _start);
            _start = _end;
            if (!await FillAsync(token))
            {
                return content.ToArray();
            }
        }
    }
}
