using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.FunctionalTests;

// Address families and the addresses Kestrel reports.
public abstract partial class TransportTests
{
    [Fact]
    public async Task ConnectionAddresses_MatchClientSocket_IPv4()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        Assert.Equal(IPAddress.Loopback, server.EndPoint.Address);
        Assert.NotEqual(0, server.EndPoint.Port);
        await AssertConnectionAddressesAsync(server.EndPoint);
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task IPv6Loopback_ServesAndReportsAddresses()
    {
        Assert.True(Socket.OSSupportsIPv6, "This machine has no IPv6 stack.");
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app), kestrel => kestrel.Listen(IPAddress.IPv6Loopback, 0));
        Assert.StartsWith("http://[::1]:", server.Addresses[0], StringComparison.Ordinal);
        Assert.Equal(IPAddress.IPv6Loopback, server.EndPoint.Address);

        await AssertConnectionAddressesAsync(server.EndPoint);
        using HttpClient client = CreateClient(server);
        Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
        ReadOnlyMemory<byte> payload = TestData.Payload(1024 * 1024);
        using var content = new ReadOnlyMemoryContent(payload);
        using HttpResponseMessage response = await client.PostAsync("/echo", content);
        Assert.Equal(payload.ToArray(), await response.Content.ReadAsByteArrayAsync());
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task UnixDomainSocket_Serves()
    {
        string path = Path.Combine(Path.GetTempPath(), $"megapipe-{Guid.NewGuid():N}.sock");
        try
        {
            await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app), kestrel => kestrel.ListenUnixSocket(path));
            Assert.Equal($"http://unix:{path}", server.Addresses[0]);
            Assert.True(File.Exists(path));

            var endPoint = new UnixDomainSocketEndPoint(path);
            using var client = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancellationToken) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(endPoint, cancellationToken);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            })
            { BaseAddress = new Uri("http://localhost"), Timeout = TestTimeouts.Long };

            Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
            ReadOnlyMemory<byte> payload = TestData.Payload(TestData.TenMegabytes);
            using (var content = new ReadOnlyMemoryContent(payload))
            using (HttpResponseMessage response = await client.PostAsync("/sha256", content))
            {
                Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
            }
            // No IP addresses on a Unix domain socket.
            string[] connection = (await client.GetStringAsync("/connection")).Split(' ');
            Assert.Equal("-", connection[0]);
            Assert.Equal("-", connection[2]);

            // Pipelined requests on a raw Unix socket.
            using RawHttpConnection raw = await RawHttpConnection.ConnectAsync(endPoint);
            await raw.SendAsync(string.Concat(Enumerable.Range(0, 16).Select(i => RawHttpConnection.Get($"/id/{i}"))));
            for (int i = 0; i < 16; i++)
            {
                Assert.Equal($"{i}", (await raw.ReadResponseAsync()).BodyText);
            }
            server.AssertNoErrorsLogged();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task ConnectionContextType_IsTheSelectedTransport()
    {
        TaskCompletionSource<ConnectionContext> seen = NewSignal<ConnectionContext>();
        await using TestServer server = await StartServerAsync(
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => connection =>
            {
                seen.TrySetResult(connection);
                return next(connection);
            })));
        using (RawHttpConnection raw = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            Assert.Equal(CommonEndpoints.Hello, (await raw.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        }

        ConnectionContext connection = await seen.Task.WaitAsync(TestTimeouts.Default);
        Output.WriteLine($"{Transport}: {connection.GetType().FullName}, id {connection.ConnectionId}");
        if (Transport.IsMegaPipe())
        {
            Assert.IsType<MegaPipe.Transport.Internal.MegaPipeConnection>(connection);
            Assert.StartsWith("MP", connection.ConnectionId, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets", connection.GetType().Namespace, StringComparison.Ordinal);
            Assert.IsNotType<MegaPipe.Transport.Internal.MegaPipeConnection>(connection);
        }
        Assert.NotNull(connection.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeFeature>());
        server.AssertNoErrorsLogged();
    }

    // One raw connection: what HttpContext.Connection reports equals the client socket's view, mirrored.
    private static async Task AssertConnectionAddressesAsync(IPEndPoint server)
    {
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server);
        var clientLocal = (IPEndPoint)connection.Socket.LocalEndPoint!;
        var clientRemote = (IPEndPoint)connection.Socket.RemoteEndPoint!;
        for (int i = 0; i < 2; i++)
        {
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/connection"));
            string[] parts = response.BodyText.Split(' ');
            Assert.Equal(clientLocal.Address, IPAddress.Parse(parts[0]));
            Assert.Equal(clientLocal.Port, int.Parse(parts[1], CultureInfo.InvariantCulture));
            Assert.Equal(clientRemote.Address, IPAddress.Parse(parts[2]));
            Assert.Equal(clientRemote.Port, int.Parse(parts[3], CultureInfo.InvariantCulture));
            Assert.Equal(server, clientRemote);
        }
    }
}
