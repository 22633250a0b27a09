using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests;

// Graceful shutdown.
public abstract partial class TransportTests
{
    [Fact]
    public async Task GracefulShutdown_InFlightRequestsGetFullResponses()
    {
        const int InFlight = 16;
        const int ResponseLength = 256 * 1024;
        int arrived = 0;
        TaskCompletionSource allArrived = NewSignal();
        TaskCompletionSource release = NewSignal();
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            app.MapGet("/slow", async (HttpContext context) =>
            {
                if (Interlocked.Increment(ref arrived) == InFlight)
                {
                    allArrived.TrySetResult();
                }
                await release.Task.WaitAsync(context.RequestAborted);
                context.Response.ContentLength = ResponseLength;
                await context.Response.Body.WriteAsync(TestData.Payload(ResponseLength));
            });
        });
        IPEndPoint endPoint = server.EndPoint;
        using HttpClient client = CreateClient(server);

        // One connection per request (HTTP/1.1 requests in parallel).
        Task<HttpResponseMessage>[] requests = Enumerable.Range(0, InFlight).Select(_ => client.GetAsync("/slow")).ToArray();
        await allArrived.Task.WaitAsync(TestTimeouts.Default);

        var stopwatch = Stopwatch.StartNew();
        using var stopTimeout = new CancellationTokenSource(TestTimeouts.Default);
        Task stopping = server.App.StopAsync(stopTimeout.Token);
        try
        {
            // Kestrel unbinds before it drains: once new connections are refused, it is draining.
            await WaitUntilRefusedAsync(endPoint);
            Assert.False(stopping.IsCompleted, "StopAsync must wait for the in-flight requests.");
        }
        finally
        {
            release.TrySetResult();
        }

        string expected = TestData.Sha256Hex(TestData.Payload(ResponseLength).Span);
        foreach (Task<HttpResponseMessage> request in requests)
        {
            using HttpResponseMessage response = await request.WaitAsync(TestTimeouts.Default);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(expected, TestData.Sha256Hex(await response.Content.ReadAsByteArrayAsync()));
        }

        await stopping.WaitAsync(TestTimeouts.Default);
        Assert.False(stopTimeout.IsCancellationRequested, "StopAsync finished by the drain, not by its timeout.");
        Output.WriteLine($"StopAsync took {stopwatch.ElapsedMilliseconds} ms.");
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task GracefulShutdown_IdleKeepAliveConnectionsAreClosedPromptly()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        var connections = new List<RawHttpConnection>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
                connections.Add(connection);
                Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
            }

            // Idle keep-alive connections do not hold shutdown up: Kestrel closes them (FIN) at once.
            var stopwatch = Stopwatch.StartNew();
            using var stopTimeout = new CancellationTokenSource(TestTimeouts.Default);
            await server.App.StopAsync(stopTimeout.Token).WaitAsync(TestTimeouts.Default);
            Assert.False(stopTimeout.IsCancellationRequested, "StopAsync finished by closing the idle connections, not by its timeout.");
            Output.WriteLine($"StopAsync took {stopwatch.ElapsedMilliseconds} ms.");
            foreach (RawHttpConnection connection in connections)
            {
                (bool reset, int received) = await connection.WaitForCloseAsync();
                Assert.False(reset, "FIN, not RST");
                Assert.Equal(0, received);
            }
        }
        finally
        {
            connections.ForEach(c => c.Dispose());
        }
        server.AssertNoErrorsLogged();
    }

    // Polls until a connect is refused (the listener is closed).
    private static async Task WaitUntilRefusedAsync(IPEndPoint endPoint)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (true)
        {
            using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(endPoint, timeout.Token);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Queued on a listening socket that closed before accepting it: still unbinding.
            }
            await Task.Delay(20, timeout.Token);
        }
    }
}
