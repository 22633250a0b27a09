using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// Faults from the peer fail that one session with a reason; the server keeps serving.
public sealed class HostileClientTests
{
    private static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return socket;
    }

    private static async Task AssertStillServesAsync(TlsEchoServer server)
    {
        await using (SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port))
        {
            await client.EchoAsync("still serving\n"u8.ToArray());
            await client.Stream.ShutdownAsync();
        }
        Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
    }

    [Fact]
    public async Task GarbageInsteadOfClientHello_FailsWithReason_ServerKeepsServing()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        using (Socket socket = await ConnectAsync(server.Port))
        {
            await socket.SendAsync("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray());
            ConnectionResult result = await server.NextResultAsync();
            Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
            Assert.Contains("http request", result.FailureReason, StringComparison.OrdinalIgnoreCase);
            Assert.True(result.ErrorQueueEmptyAfterEnd);
        }
        using (Socket socket = await ConnectAsync(server.Port))
        {
            await socket.SendAsync(RandomNumberGenerator.GetBytes(4096));
            ConnectionResult result = await server.NextResultAsync();
            Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
            Assert.StartsWith("TLS handshake failed: error:", result.FailureReason);
        }
        await AssertStillServesAsync(server);
    }

    [Fact]
    public async Task ResetMidHandshake_FailsThatSessionOnly()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        // A real ClientHello from openssl, cut short: the first 100 bytes, then a reset.
        byte[] hello = await CaptureClientHelloAsync();
        using (Socket socket = await ConnectAsync(server.Port))
        {
            await socket.SendAsync(hello.AsMemory(0, 100));
            socket.LingerState = new LingerOption(true, 0);
            socket.Close(); // RST
        }
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("closed the connection before the handshake completed", result.FailureReason);
        Assert.True(result.ErrorQueueEmptyAfterEnd);
        await AssertStillServesAsync(server);
    }

    [Fact]
    public async Task ResetAfterServerHello_FailsThatSessionOnly()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        byte[] hello = await CaptureClientHelloAsync();
        using (Socket socket = await ConnectAsync(server.Port))
        {
            await socket.SendAsync(hello);
            byte[] buffer = new byte[16 * 1024];
            Assert.True(await socket.ReceiveAsync(buffer) > 0); // the server's first flight
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("before the handshake completed", result.FailureReason);
        await AssertStillServesAsync(server);
    }

    // The bytes `openssl s_client` sends first: a genuine ClientHello.
    private static async Task<byte[]> CaptureClientHelloAsync()
    {
        using Socket listener = Loopback.Listen(1);
        using ClientProcess client = OpenSslClient.Start(((IPEndPoint)listener.LocalEndPoint!).Port, "-tls1_3");
        using Socket accepted = await listener.AcceptAsync();
        byte[] buffer = new byte[16 * 1024];
        int total = 0;
        // A record header says how long the ClientHello record is.
        while (total < 5 || total < 5 + ((buffer[3] << 8) | buffer[4]))
        {
            int read = await accepted.ReceiveAsync(buffer.AsMemory(total));
            Assert.NotEqual(0, read);
            total += read;
        }
        return buffer.AsSpan(0, total).ToArray();
    }
}
