using System.Net;
using System.Net.Sockets;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// IConnectionSocketFeature on demand: application code that asks a MegaPipe connection for its
/// Socket gets a working one (a descriptor installed for the lightweight socket), options it sets
/// take effect on the connection, the connection goes on serving, and the descriptor closes with it.
/// </summary>
public sealed class SocketFeatureTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ChannelEngine.IoUring, true, false)]
    [InlineData(ChannelEngine.IoUring, true, true)]
    [InlineData(ChannelEngine.IoUring, false, false)]
    [InlineData(ChannelEngine.Epoll, true, false)]
    [InlineData(ChannelEngine.Epoll, true, true)]
    public async Task Socket_IsInstalledOnDemand_SetsOptions_AndClosesWithTheConnection(ChannelEngine engine, bool lightweight, bool inline)
    {
        Socket? handedOut = null;
        string? installedLink = null;
        int installedFd = -1;
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app =>
            {
                CommonEndpoints.Map(app);
                app.MapGet("/socket", (HttpContext context) =>
                {
                    Socket socket = context.Features.Get<IConnectionSocketFeature>()!.Socket;
                    // The same Socket for the connection's lifetime.
                    Assert.Same(socket, context.Features.Get<IConnectionSocketFeature>()!.Socket);
                    handedOut = socket;
                    installedFd = (int)socket.Handle;
                    installedLink = new FileInfo($"/proc/self/fd/{installedFd}").LinkTarget;
                    // setsockopt through it changes the connection's socket.
                    socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
                    socket.ReceiveBufferSize = 65536;
                    bool keepAlive = (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)! != 0;
                    return $"{keepAlive} {socket.RemoteEndPoint} {socket.LocalEndPoint} {socket.ReceiveBufferSize}";
                });
            },
            configureMegaPipe: options =>
            {
                options.Engine = engine;
                options.LightweightSockets = lightweight;
                options.UnsafeInlineScheduling = inline;
            },
            output: output);
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            RawHttpResponse first = await connection.RequestAsync(RawHttpConnection.Get("/socket"));
            Assert.Equal(200, first.StatusCode);
            string[] answer = first.BodyText.Split(' ');
            Assert.Equal("True", answer[0]);
            // The Socket is the connection's: its peer is this client, its local end the server.
            Assert.Equal(connection.Socket.LocalEndPoint!.ToString(), answer[1]);
            Assert.Equal(server.EndPoint.ToString(), answer[2]);
            // The kernel doubles SO_RCVBUF for bookkeeping: what was set is in effect.
            Assert.True(int.Parse(answer[3], System.Globalization.CultureInfo.InvariantCulture) >= 65536, answer[3]);

            // The connection keeps working on its channel, through the transport.
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
            }
            byte[] body = TestData.Payload(256 * 1024).ToArray();
            await connection.SendAsync($"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n");
            await connection.SendAsync(body);
            Assert.Equal($"{body.Length} {TestData.Sha256Hex(body)}", (await connection.ReadResponseAsync()).BodyText);
            // Its SO_KEEPALIVE, seen through the client's view of the same TCP connection's other end, is the server's own; check it held.
            Assert.True((int)handedOut!.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)! != 0);
        }
        // Closed with the connection: the Socket is disposed and its descriptor gone.
        await Poll.UntilAsync(() => handedOut!.SafeHandle.IsClosed, "the handed-out Socket to be disposed with its connection");
        Assert.Throws<ObjectDisposedException>(() => handedOut.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive));
        // The installed descriptor was a socket of its own (a lightweight socket had none), and it is gone
        // (its number may have been reused since, but not for that socket).
        Assert.StartsWith("socket:[", installedLink, StringComparison.Ordinal);
        Assert.NotEqual(installedLink, new FileInfo($"/proc/self/fd/{installedFd}").LinkTarget);
        server.AssertNoErrorsLogged();
    }
}
