using System.Net;
using System.Net.Sockets;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// Listening sockets the process is handed (Kestrel's ListenHandle; systemd socket activation goes
/// the same way, see the deployment tests) are served on the MegaPipe channels, unpartitioned, and
/// the log says so; descriptors MegaPipe cannot accept on are logged and left to the next transport.
/// </summary>
public sealed class InheritedSocketTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task ListenHandle_TcpSocket_IsServedOnTheChannels(ChannelEngine engine)
    {
        (ulong fd, EndPoint local) = InheritListeningSocket(new IPEndPoint(IPAddress.Loopback, 0), listen: true);
        var endpoint = (IPEndPoint)local;
        var transports = new List<ConnectionContext>();
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.ListenHandle(fd, listen => listen.Use(next => connection =>
            {
                lock (transports)
                {
                    transports.Add(connection);
                }
                return next(connection);
            })),
            options => options.Engine = engine,
            output);

        // Kestrel reports the socket's real address, which the transport read from it.
        Assert.Equal($"http://{endpoint}", server.Addresses.Single());
        LogEntry listening = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "Listening");
        Assert.Contains(endpoint.ToString(), listening.Message, StringComparison.Ordinal);
        Assert.Contains("partitioning off (an inherited socket is one accept queue, shared by every channel)", listening.Message, StringComparison.Ordinal);

        // Served by MegaPipe, through both channels (the one accept queue is armed in each).
        for (int i = 0; i < 8; i++)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(endpoint);
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
            Assert.Equal(CommonEndpoints.Hello, response.BodyText);
        }
        lock (transports)
        {
            Assert.Equal(8, transports.Count);
            Assert.All(transports, c => Assert.IsType<MegaPipeConnection>(c));
        }
        server.AssertNoErrorsLogged();

        // The transport owned the socket: stopping the server closed it.
        await server.DisposeAsync();
        var refused = await Assert.ThrowsAnyAsync<SocketException>(async () => (await RawHttpConnection.ConnectAsync(endpoint)).Dispose());
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task ListenHandle_BoundUnixSocketNotYetListening_IsServed_AndItsPathStays()
    {
        string path = Path.Combine(Path.GetTempPath(), $"megapipe-{Guid.NewGuid():N}.sock");
        try
        {
            (ulong fd, _) = InheritListeningSocket(new UnixDomainSocketEndPoint(path), listen: false);
            await using (TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app), kestrel => kestrel.ListenHandle(fd), output: output))
            {
                using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(new UnixDomainSocketEndPoint(path));
                Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
                server.AssertNoErrorsLogged();
            }
            // The path belongs to whoever created the socket (systemd, say), not to the transport.
            Assert.True(File.Exists(path), "the transport deleted an inherited socket's path");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task CanBind_RefusesADatagramSocket_AndLogsWhy()
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app), output: output);
        MegaPipeTransportFactory factory = server.App.Services.GetServices<IConnectionListenerFactory>().OfType<MegaPipeTransportFactory>().Single();
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var endpoint = new FileHandleEndPoint((ulong)udp.Handle, FileHandleType.Auto);

        Assert.False(factory.CanBind(endpoint));
        LogEntry entry = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "EndpointNotServed");
        Assert.Contains("Dgram", entry.Message, StringComparison.Ordinal);
        Assert.Contains("Kestrel's next transport serves it", entry.Message, StringComparison.Ordinal);
        // A declared pipe is refused without a look at the descriptor.
        Assert.False(factory.CanBind(new FileHandleEndPoint((ulong)udp.Handle, FileHandleType.Pipe)));
        Assert.True(factory.CanBind(new IPEndPoint(IPAddress.Loopback, 0)));
    }

    // A socket as a parent process would pass it on: bound (and listening when asked), its
    // descriptor handed over and no longer owned by anything in this process.
    private static (ulong Fd, EndPoint EndPoint) InheritListeningSocket(EndPoint bindTo, bool listen)
    {
        var socket = bindTo is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(bindTo.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(bindTo);
        if (listen)
        {
            socket.Listen(64);
        }
        EndPoint local = socket.LocalEndPoint!;
        ulong fd = (ulong)socket.Handle;
        // Hand the descriptor over: the transport owns it now, and this Socket must not close it.
        socket.SafeHandle.SetHandleAsInvalid();
        GC.SuppressFinalize(socket);
        return (fd, local);
    }
}
