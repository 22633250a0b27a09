using System.Collections.Concurrent;
using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MegaPipe.Transport.FunctionalTests;

// HTTP/2 cleartext with prior knowledge (h2c).
public abstract partial class TransportTests
{
    [Fact]
    public async Task Http2PriorKnowledge_200ConcurrentStreamsOnOneConnection()
    {
        const int Streams = 200;
        int arrived = 0;
        TaskCompletionSource allArrived = NewSignal();
        var connectionIds = new ConcurrentDictionary<string, int>();
        await using TestServer server = await StartServerAsync(
            app =>
            {
                CommonEndpoints.Map(app);
                // Holds every stream open until all 200 are in flight at once, then echoes the body.
                app.MapPost("/h2/{id:int}", async (int id, HttpContext context) =>
                {
                    connectionIds.TryAdd(context.Connection.Id, 0);
                    using var body = new MemoryStream();
                    await context.Request.Body.CopyToAsync(body, context.RequestAborted);
                    if (Interlocked.Increment(ref arrived) == Streams)
                    {
                        allArrived.TrySetResult();
                    }
                    await allArrived.Task.WaitAsync(TestTimeouts.Default, context.RequestAborted);
                    context.Response.Headers["x-protocol"] = context.Request.Protocol;
                    await context.Response.Body.WriteAsync(body.ToArray(), context.RequestAborted);
                });
            },
            kestrel =>
            {
                kestrel.Limits.Http2.MaxStreamsPerConnection = Streams;
                kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
            });
        using HttpClient client = CreateClient(server, handler => handler.EnableMultipleHttp2Connections = false);
        client.DefaultRequestVersion = HttpVersion.Version20;
        client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;

        // Open the connection first so the client knows the server's stream limit.
        using (HttpResponseMessage warmUp = await client.GetAsync("/hello"))
        {
            Assert.Equal(HttpVersion.Version20, warmUp.Version);
        }

        await Task.WhenAll(Enumerable.Range(0, Streams).Select(async i =>
        {
            ReadOnlyMemory<byte> payload = TestData.Payload(1024 + (i * 97));
            using var content = new ReadOnlyMemoryContent(payload);
            using HttpResponseMessage response = await client.PostAsync($"/h2/{i}", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal("HTTP/2", response.Headers.GetValues("x-protocol").Single());
            Assert.Equal(payload.ToArray(), await response.Content.ReadAsByteArrayAsync());
        })).WaitAsync(TestTimeouts.Long);

        Assert.Single(connectionIds);

        // A 10 MB response on the same connection exercises HTTP/2 flow control over the transport.
        byte[] large = await client.GetByteArrayAsync($"/bytes/{TestData.TenMegabytes}");
        Assert.Equal(TestData.Sha256Hex(TestData.Payload(TestData.TenMegabytes).Span), Convert.ToHexString(SHA256.HashData(large)));
        server.AssertNoErrorsLogged();
    }
}
