using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>A response read off a raw socket.</summary>
public sealed record RawResponse(int StatusCode, Dictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;
}

/// <summary>
/// Sends request targets exactly as written (HttpClient would normalize "..", "%2e" and friends),
/// one request per connection, and reads the response to the end of the connection.
/// </summary>
public static class RawHttp
{
    public static Task<RawResponse> GetAsync(IPEndPoint endPoint, string target, string method = "GET", params string[] headers)
        => SendAsync(endPoint, Encoding.ASCII.GetBytes($"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{string.Concat(headers.Select(h => h + "\r\n"))}\r\n"), method == "HEAD");

    public static async Task<RawResponse> SendAsync(IPEndPoint endPoint, byte[] request, bool head = false)
    {
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint, cts.Token);
        await socket.SendAsync(request, SocketFlags.None, cts.Token);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            if (n == 0)
            {
                break;
            }
            received.Write(buffer, 0, n);
        }
        return Parse(received.ToArray(), head);
    }

    private static RawResponse Parse(byte[] data, bool head)
    {
        int end = data.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.True(end > 0, $"no complete response header in {data.Length} bytes");
        string[] lines = Encoding.ASCII.GetString(data, 0, end).Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        byte[] body = data[(end + 4)..];
        if (!head && headers.TryGetValue("Content-Length", out string? length))
        {
            Assert.Equal(long.Parse(length, System.Globalization.CultureInfo.InvariantCulture), body.Length);
        }
        return new RawResponse(status, headers, body);
    }
}
