using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests;

// HTTP/1.1: requests, large bodies, pipelining, many connections.
public abstract partial class TransportTests
{
    [Fact]
    public async Task Get_ReturnsBody()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using HttpClient client = CreateClient(server);

        for (int i = 0; i < 3; i++)
        {
            using HttpResponseMessage response = await client.GetAsync($"/id/{i}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version11, response.Version);
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task Post_EchoesBody()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using HttpClient client = CreateClient(server);

        using (var content = new StringContent("ping from the client", Encoding.UTF8, "text/plain"))
        using (HttpResponseMessage response = await client.PostAsync("/echo", content))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ping from the client", await response.Content.ReadAsStringAsync());
        }

        // Bigger than a receive buffer and than the output pipe's pause threshold.
        ReadOnlyMemory<byte> payload = TestData.Payload(300 * 1024);
        using (var content = new ReadOnlyMemoryContent(payload))
        {
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using HttpResponseMessage response = await client.PostAsync("/echo", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(payload.ToArray(), await response.Content.ReadAsByteArrayAsync());
        }
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task LargeRequestBody_10MB_HashMatches()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using HttpClient client = CreateClient(server);
        ReadOnlyMemory<byte> payload = TestData.Payload(TestData.TenMegabytes);

        using var content = new ReadOnlyMemoryContent(payload);
        using HttpResponseMessage response = await client.PostAsync("/sha256", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task LargeResponseBody_10MB_HashMatches()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using HttpClient client = CreateClient(server);

        using HttpResponseMessage response = await client.GetAsync($"/bytes/{TestData.TenMegabytes}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(TestData.TenMegabytes, response.Content.Headers.ContentLength);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using Stream body = await response.Content.ReadAsStreamAsync();
        byte[] buffer = new byte[64 * 1024];
        long length = 0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            length += read;
        }

        Assert.Equal(TestData.TenMegabytes, length);
        Assert.Equal(TestData.Sha256Hex(TestData.Payload(TestData.TenMegabytes).Span), Convert.ToHexString(hash.GetHashAndReset()));
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task LargeRequestHeaders_SpanManyReceiveBuffers()
    {
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            app.MapGet("/header", (HttpContext context) => TestData.Sha256Hex(Encoding.ASCII.GetBytes(context.Request.Headers["x-large"].ToString())));
        });
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        // 24 KB of header value: six 4 KB receive buffers, under Kestrel's 32 KB header limit.
        string value = Convert.ToHexString(TestData.Payload(12 * 1024).Span);

        for (int i = 0; i < 3; i++)
        {
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/header", $"x-large: {value}\r\n"));
            Assert.Equal(200, response.StatusCode);
            Assert.Equal(TestData.Sha256Hex(Encoding.ASCII.GetBytes(value)), response.BodyText);
        }
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task ManySmallFlushes_ArriveInOrder()
    {
        const int Flushes = 2000;
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            // One flush per line: many sends, each possibly issued while the previous is in flight.
            app.MapGet("/lines", async (HttpContext context) =>
            {
                for (int i = 0; i < Flushes; i++)
                {
                    await context.Response.WriteAsync($"line {i}\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            });
        });
        using HttpClient client = CreateClient(server);

        for (int round = 0; round < 2; round++)
        {
            string body = await client.GetStringAsync("/lines");
            string[] lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Enumerable.Range(0, Flushes).Select(i => $"line {i}"), lines);
        }
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task Pipelining_32RequestsInOneWrite_ResponsesInOrder()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);

        const int Count = 32;
        var requests = new StringBuilder();
        for (int i = 0; i < Count; i++)
        {
            // Every fourth request carries a body, so the server parses bodies between pipelined requests.
            requests.Append(i % 4 == 3 ? RawHttpConnection.Post("/echo", $"body {i}") : RawHttpConnection.Get($"/id/{i}"));
        }
        await connection.SendAsync(requests.ToString());

        for (int i = 0; i < Count; i++)
        {
            RawHttpResponse response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.Equal(i % 4 == 3 ? $"body {i}" : $"{i}", response.BodyText);
        }

        // The connection is still usable after the burst.
        RawHttpResponse last = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
        Assert.Equal(CommonEndpoints.Hello, last.BodyText);
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task ThousandConcurrentKeepAliveConnections_AllRequestsSucceed()
    {
        const int Count = 1000;
        int active = 0;
        int peak = 0;
        TaskCompletionSource allClosed = NewSignal();
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app), kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => async connection =>
        {
            int now = Interlocked.Increment(ref active);
            InterlockedMax(ref peak, now);
            try
            {
                await next(connection);
            }
            finally
            {
                if (Interlocked.Decrement(ref active) == 0 && Volatile.Read(ref peak) >= Count)
                {
                    allClosed.TrySetResult();
                }
            }
        })));

        var connections = new RawHttpConnection[Count];
        try
        {
            // Open every connection and make one request on it; at most 100 handshakes at a time.
            using (var gate = new SemaphoreSlim(100))
            {
                await Task.WhenAll(Enumerable.Range(0, Count).Select(async i =>
                {
                    await gate.WaitAsync();
                    try
                    {
                        connections[i] = await RawHttpConnection.ConnectAsync(server.EndPoint);
                        RawHttpResponse response = await connections[i].RequestAsync(RawHttpConnection.Get($"/id/{i}"));
                        Assert.Equal($"{i}", response.BodyText);
                    }
                    finally
                    {
                        gate.Release();
                    }
                })).WaitAsync(TestTimeouts.Long);
            }
            Assert.Equal(Count, Volatile.Read(ref active));

            // All 1,000 are open at once: each makes two more requests on its kept-alive connection.
            await Task.WhenAll(connections.Select(async (connection, i) =>
            {
                for (int round = 0; round < 2; round++)
                {
                    RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get($"/id/{i}-{round}"));
                    Assert.Equal(200, response.StatusCode);
                    Assert.Equal($"{i}-{round}", response.BodyText);
                }
            })).WaitAsync(TestTimeouts.Long);
            Assert.Equal(Count, Volatile.Read(ref peak));
        }
        finally
        {
            foreach (RawHttpConnection? connection in connections)
            {
                connection?.Dispose();
            }
        }

        // The server sees every client close.
        await allClosed.Task.WaitAsync(TestTimeouts.Long);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ConnectionCloseChurn_300SequentialConnections()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));

        for (int i = 0; i < 300; i++)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get($"/id/{i}", "Connection: close\r\n"));
            Assert.Equal($"{i}", response.BodyText);
            Assert.Equal("close", response.Header("Connection"));
            // The server closes after the response, in order.
            (bool reset, int extra) = await connection.WaitForCloseAsync();
            Assert.False(reset, "FIN, not RST");
            Assert.Equal(0, extra);
        }
        server.AssertNoErrorsLogged();
    }

    private static void InterlockedMax(ref int location, int value)
    {
        int current = Volatile.Read(ref location);
        while (value > current)
        {
            int seen = Interlocked.CompareExchange(ref location, value, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }
}
