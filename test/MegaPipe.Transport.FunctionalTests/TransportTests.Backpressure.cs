using System.Net.Http;
using System.Security.Cryptography;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests;

// Flow control: a reader slower than the writer, on either side.
public abstract partial class TransportTests
{
    [Fact]
    public async Task SlowApplicationReader_10MBUpload_ArrivesIntact()
    {
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            // Reads in 1 KB steps, yielding between them: the input pipe fills past its 1 MB
            // limit, so the transport stops receiving and resumes as the reads catch up.
            app.MapPost("/slow-sha256", async (HttpContext context) =>
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                byte[] buffer = new byte[1024];
                long length = 0;
                int read;
                while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    length += read;
                    await Task.Yield();
                }
                return $"{length} {Convert.ToHexString(hash.GetHashAndReset())}";
            });
        });
        using HttpClient client = CreateClient(server);
        ReadOnlyMemory<byte> payload = TestData.Payload(TestData.TenMegabytes);

        using var content = new ReadOnlyMemoryContent(payload);
        using HttpResponseMessage response = await client.PostAsync("/slow-sha256", content);

        Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        if (Transport.IsMegaPipe())
        {
            // The transport really paused receiving (and resumed: the body is complete).
            Assert.Contains(server.Logs.Entries, e => e.EventId.Name == "ConnectionPause");
            Assert.Contains(server.Logs.Entries, e => e.EventId.Name == "ConnectionResume");
        }
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task SlowClientReader_10MBResponse_ArrivesIntact()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app));
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        // A small receive buffer and 4 KB reads: the server's sends outpace the client, its
        // output pipe fills past the 64 KB limit and the application's writes wait.
        connection.Socket.ReceiveBufferSize = 16 * 1024;

        await connection.SendAsync(RawHttpConnection.Get($"/bytes/{TestData.TenMegabytes}"));
        RawHttpResponse response = await connection.ReadResponseAsync(readChunkSize: 4096);

        Assert.Equal(200, response.StatusCode);
        Assert.Equal(TestData.Sha256Hex(TestData.Payload(TestData.TenMegabytes).Span), TestData.Sha256Hex(response.Body));
        // The connection stays usable.
        Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        server.AssertNoErrorsLogged();
    }
}
