// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace MegaPipe.Tests.Shared;

// What tests of misbehaving peers need: sends that tolerate the server closing mid-send, a half
// close, everything up to the server's close with how it ended, a body hashed as it arrives (too
// large to keep), and the status codes of raw pipelined responses.
public sealed partial class RawHttpConnection
{
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
                int read = await ReceiveAsync(_buffer, cancel.Token);
                if (read == 0)
                {
                    return (data.ToArray(), false);
                }
                data.Write(_buffer, 0, read);
            }
        }
        catch (Exception e) when (IsReset(e))
        {
            return (data.ToArray(), true);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The server did not close the connection ({data.Length} bytes arrived first: '{Preview(data.ToArray())}').");
        }
    }

    /// <summary>Reads exactly <paramref name="length"/> body bytes, hashing them as they arrive: the SHA-256 (hex) of the body.</summary>
    public async Task<string> ReadBodySha256Async(long length, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestTimeouts.Long);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
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

    /// <summary>The first 300 bytes of <paramref name="data"/>, CR and LF shown escaped, for failure messages.</summary>
    public static string Preview(byte[] data)
    {
        string text = Encoding.Latin1.GetString(data, 0, Math.Min(data.Length, 300));
        return text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }
}
