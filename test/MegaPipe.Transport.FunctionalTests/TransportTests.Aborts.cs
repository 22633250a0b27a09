using System.Collections.Concurrent;
using System.Net;
using System.Net.Http;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests;

// Connections that end abnormally: client resets, server aborts, clients that go away.
public abstract partial class TransportTests
{
    [Fact]
    public async Task ClientResetMidRequest_AppObservesAbort_ServerSurvives()
    {
        TaskCompletionSource bodyStarted = NewSignal();
        TaskCompletionSource<Exception?> readOutcome = NewSignal<Exception?>();
        TaskCompletionSource requestAborted = NewSignal();
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            app.MapPost("/upload", async (HttpContext context) =>
            {
                context.RequestAborted.Register(() => requestAborted.TrySetResult());
                byte[] buffer = new byte[16 * 1024];
                try
                {
                    while (await context.Request.Body.ReadAsync(buffer) > 0)
                    {
                        bodyStarted.TrySetResult();
                    }
                    readOutcome.TrySetResult(null);
                }
                catch (Exception e)
                {
                    readOutcome.TrySetResult(e);
                    // Stay in the request until RequestAborted fires: once the request ends, it never would.
                    await requestAborted.Task.WaitAsync(TestTimeouts.Default).ContinueWith(_ => { }, TaskScheduler.Default);
                }
            });
        });

        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            // Headers and 64 KB of a 10 MB body, then RST.
            await connection.SendAsync("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10485760\r\n\r\n");
            await connection.SendAsync(TestData.Payload(64 * 1024));
            await bodyStarted.Task.WaitAsync(TestTimeouts.Default);
            connection.Reset();
        }

        Exception? error = await readOutcome.Task.WaitAsync(TestTimeouts.Default);
        Assert.NotNull(error); // the body read throws: it did not end as if the body were complete
        Output.WriteLine($"Body read threw {error.GetType().FullName}: {error.Message}");
        Assert.True(error is IOException or ConnectionResetException or OperationCanceledException or BadHttpRequestException, error.ToString());
        await requestAborted.Task.WaitAsync(TestTimeouts.Default);
        // Kestrel (on either transport) logs that it could not drain the body the app failed to read.
        await AssertServerServesAsync(server, "RequestBodyDrainBodyReaderInvalidState");
    }

    [Fact]
    public async Task ClientResetMidResponse_AppObservesAbort_ServerSurvives()
    {
        TaskCompletionSource requestAborted = NewSignal();
        TaskCompletionSource appFinished = NewSignal();
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            // Streams until the client goes away.
            app.MapGet("/endless", async (HttpContext context) =>
            {
                context.RequestAborted.Register(() => requestAborted.TrySetResult());
                ReadOnlyMemory<byte> chunk = TestData.Payload(64 * 1024);
                try
                {
                    while (!context.RequestAborted.IsCancellationRequested)
                    {
                        await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    }
                }
                catch (OperationCanceledException)
                {
                    // Writes only throw because RequestAborted fired, as Kestrel expects of a transport.
                }
                finally
                {
                    appFinished.TrySetResult();
                }
            });
        });

        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await connection.SendAsync(RawHttpConnection.Get("/endless"));
            await connection.SkipAsync(512 * 1024);
            connection.Reset();
        }

        await requestAborted.Task.WaitAsync(TestTimeouts.Default);
        await appFinished.Task.WaitAsync(TestTimeouts.Default);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ServerAbort_ClientSeesConnectionClosed_LaterRequestsSucceed()
    {
        int aborts = 0;
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            app.MapGet("/abort", (HttpContext context) =>
            {
                Interlocked.Increment(ref aborts);
                context.Abort();
            });
        });

        // Raw socket: the connection is reset (as Kestrel's Sockets transport does on Abort) without
        // any response byte.
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            RawHttpResponse first = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
            Assert.Equal(CommonEndpoints.Hello, first.BodyText);
            await connection.SendAsync(RawHttpConnection.Get("/abort"));
            (bool reset, int received) = await connection.WaitForCloseAsync();
            Assert.True(reset, "RST, not FIN");
            Assert.Equal(0, received);
        }

        // HttpClient: the request fails, and is not retried (a FIN before any response byte would
        // make HttpClient retry it up to three times).
        using (HttpClient client = CreateClient(server))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/abort"));
        }
        Assert.Equal(2, Volatile.Read(ref aborts));

        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ClientDisconnectDuringLongRequest_RequestAbortedAndConnectionClosedFire()
    {
        TaskCompletionSource<string> requestArrived = NewSignal<string>();
        TaskCompletionSource requestAborted = NewSignal();
        var connectionClosed = new ConcurrentDictionary<string, TaskCompletionSource>();
        await using TestServer server = await StartServerAsync(
            app =>
            {
                CommonEndpoints.Map(app);
                // Waits for nothing but the client going away.
                app.MapGet("/long", async (HttpContext context) =>
                {
                    requestArrived.TrySetResult(context.Connection.Id);
                    try
                    {
                        await Task.Delay(Timeout.Infinite, context.RequestAborted);
                    }
                    catch (OperationCanceledException)
                    {
                        requestAborted.TrySetResult();
                    }
                });
            },
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => connection =>
            {
                TrackConnectionClosed(connection, connectionClosed);
                return next(connection);
            })));

        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await connection.SendAsync(RawHttpConnection.Get("/long"));
            await requestArrived.Task.WaitAsync(TestTimeouts.Default);
            // An orderly close: FIN, no RST.
        }

        string id = await requestArrived.Task;
        await requestAborted.Task.WaitAsync(TestTimeouts.Default);
        await connectionClosed[id].Task.WaitAsync(TestTimeouts.Default);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ClientDisconnectWhileIdle_ConnectionClosedFires()
    {
        var connectionClosed = new ConcurrentDictionary<string, TaskCompletionSource>();
        await using TestServer server = await StartServerAsync(
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => connection =>
            {
                TrackConnectionClosed(connection, connectionClosed);
                return next(connection);
            })));

        string finId;
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/connection"));
            finId = response.BodyText.Split(' ')[4];
        }
        await connectionClosed[finId].Task.WaitAsync(TestTimeouts.Default);

        string resetId;
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/connection"));
            resetId = response.BodyText.Split(' ')[4];
            connection.Reset();
        }
        await connectionClosed[resetId].Task.WaitAsync(TestTimeouts.Default);
        await AssertServerServesAsync(server);
    }

    // Completes connectionClosed[id] when the transport's ConnectionClosed token fires; checks
    // IConnectionLifetimeFeature hands out the same token.
    private static void TrackConnectionClosed(ConnectionContext connection, ConcurrentDictionary<string, TaskCompletionSource> connectionClosed)
    {
        TaskCompletionSource closed = connectionClosed.GetOrAdd(connection.ConnectionId, _ => NewSignal());
        IConnectionLifetimeFeature lifetime = connection.Features.Get<IConnectionLifetimeFeature>() ?? throw new InvalidOperationException("No IConnectionLifetimeFeature.");
        Assert.Equal(connection.ConnectionClosed, lifetime.ConnectionClosed);
        connection.ConnectionClosed.Register(() => closed.TrySetResult());
    }
}
