using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// A client on a plain socket for tests of misbehaving peers: sends whatever it is given, one byte
/// per send if asked, tolerates the server closing on it mid-send, reads everything up to the
/// server's close, and can half-close or reset the connection.
/// </summary>
public sealed class HostileClient : IDisposable
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    // Received bytes not yet consumed are _buffer[_start.._end].
    private int _start;
    private int _end;

    private HostileClient(Socket socket)
    {
        Socket = socket;
    }

    public Socket Socket { get; }

    /// <summary>Connects with Nagle off; <paramref name="receiveBufferSize"/> (set before connecting, so the window is small from the SYN on) caps the client's kernel buffer.</summary>
    public static async Task<HostileClient> ConnectAsync(IPEndPoint endPoint, int? receiveBufferSize = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (receiveBufferSize is int size)
            {
                socket.ReceiveBufferSize = size;
            }
            using var timeout = new CancellationTokenSource(TestTimeouts.Default);
            await socket.ConnectAsync(endPoint, timeout.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new HostileClient(socket);
    }

    public Task SendAsync(string text) => SendAsync(Encoding.ASCII.GetBytes(text));

    /// <summary>Sends all of <paramref name="data"/>; throws if the connection fails.</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> data)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (!data.IsEmpty)
        {
            int sent = await Socket.SendAsync(data, SocketFlags.None, timeout.Token);
            data = data[sent..];
        }
    }

    /// <summary>Sends as much of <paramref name="data"/> as the server takes; false when the server closed or reset the connection first.</summary>
    public async Task<bool> TrySendAsync(ReadOnlyMemory<byte> data)
    {
        try
        {
            await SendAsync(data);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
        {
            return false;
        }
    }

    /// <summary>Stops sending: the server reads end of stream (FIN) after what was sent.</summary>
    public void ShutdownSend() => Socket.Shutdown(SocketShutdown.Send);

    /// <summary>Closes with SO_LINGER 0: the kernel sends RST instead of FIN and drops what was not read.</summary>
    public void Reset()
    {
        Socket.LingerState = new LingerOption(true, 0);
        Socket.Close();
    }

    /// <summary>Reads until the server closes the connection (FIN or RST): the bytes that arrived, and whether it ended in a reset.</summary>
    public async Task<(byte[] Data, bool Reset)> ReadToCloseAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestTimeouts.Default);
        var data = new MemoryStream();
        data.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        try
        {
            while (true)
            {
                int read = await Socket.ReceiveAsync(_buffer, SocketFlags.None, cancel.Token);
                if (read == 0)
                {
                    return (data.ToArray(), false);
                }
                data.Write(_buffer, 0, read);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return (data.ToArray(), true);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The server did not close the connection ({data.Length} bytes arrived first: '{Preview(data.ToArray())}').");
        }
    }

    /// <summary>Reads a response's status line and headers (up to the empty line).</summary>
    public async Task<(int StatusCode, IReadOnlyDictionary<string, string> Headers)> ReadResponseHeadAsync()
    {
        using var cancel = new CancellationTokenSource(TestTimeouts.Default);
        while (true)
        {
            int end = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                string[] lines = Encoding.Latin1.GetString(_buffer, _start, end).Split("\r\n");
                _start += end + 4;
                Assert.True(lines[0].StartsWith("HTTP/1.1 ", StringComparison.Ordinal), $"Not an HTTP/1.1 status line: '{lines[0]}'.");
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                foreach (string line in lines.Skip(1))
                {
                    int colon = line.IndexOf(':', StringComparison.Ordinal);
                    headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
                }
                return (int.Parse(lines[0].AsSpan(9, 3), CultureInfo.InvariantCulture), headers);
            }
            Assert.True(_end - _start < _buffer.Length, "Response headers larger than the client's buffer.");
            if (!await FillAsync(cancel.Token))
            {
                throw new IOException($"The connection closed before the end of the response headers ('{Preview(_buffer[_start.._end])}').");
            }
        }
    }

    /// <summary>Reads exactly <paramref name="length"/> body bytes, hashing them as they arrive: the SHA-256 (hex) of the body.</summary>
    public async Task<string> ReadBodySha256Async(long length, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestTimeouts.Long);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        while (length > 0)
        {
            if (_start == _end && !await FillAsync(cancel.Token))
            {
                throw new IOException($"The connection closed with {length} body bytes still to come.");
            }
            int take = (int)Math.Min(length, _end - _start);
            hash.AppendData(_buffer, _start, take);
            _start += take;
            length -= take;
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>The status code of the first response in <paramref name="data"/>, or null when nothing arrived.</summary>
    public static int? StatusCodeOf(byte[] data)
    {
        if (data.Length == 0)
        {
            return null;
        }
        string text = Encoding.ASCII.GetString(data, 0, Math.Min(data.Length, 64));
        Assert.True(text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal), $"Not an HTTP/1.1 response: '{Preview(data)}'.");
        return int.Parse(text.AsSpan(9, 3), CultureInfo.InvariantCulture);
    }

    /// <summary>The status codes of every response in <paramref name="data"/> (bodies framed by Content-Length or chunked).</summary>
    public static IReadOnlyList<int> StatusCodesOf(byte[] data)
    {
        var codes = new List<int>();
        string text = Encoding.Latin1.GetString(data);
        int position = 0;
        while (position < text.Length)
        {
            Assert.True(string.CompareOrdinal(text, position, "HTTP/1.1 ", 0, 9) == 0, $"Not an HTTP/1.1 response at byte {position}: '{Preview(data)}'.");
            codes.Add(int.Parse(text.AsSpan(position + 9, 3), CultureInfo.InvariantCulture));
            int headersEnd = text.IndexOf("\r\n\r\n", position, StringComparison.Ordinal);
            Assert.True(headersEnd > 0, $"Incomplete response headers: '{Preview(data)}'.");
            int length = 0;
            bool chunked = false;
            foreach (string line in text[position..headersEnd].Split("\r\n"))
            {
                if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                {
                    length = int.Parse(line.AsSpan(15).Trim(), CultureInfo.InvariantCulture);
                }
                chunked |= line.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && line.Contains("chunked", StringComparison.OrdinalIgnoreCase);
            }
            position = headersEnd + 4;
            if (!chunked)
            {
                position += length;
                continue;
            }
            // Chunks until the zero-size one and the empty line after it (no trailers expected).
            while (true)
            {
                int lineEnd = text.IndexOf("\r\n", position, StringComparison.Ordinal);
                Assert.True(lineEnd > 0, $"Incomplete chunked body: '{Preview(data)}'.");
                int size = int.Parse(text.AsSpan(position, lineEnd - position).ToString().Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                position = lineEnd + 2 + size + 2;
                if (size == 0)
                {
                    break;
                }
            }
        }
        return codes;
    }

    public static string Preview(byte[] data)
    {
        string text = Encoding.Latin1.GetString(data, 0, Math.Min(data.Length, 300));
        return text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }

    public void Dispose() => Socket.Dispose();

    private async Task<bool> FillAsync(CancellationToken cancellationToken)
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
        int read = await Socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
        _end += read;
        return read > 0;
    }
}
