using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// The engine against .NET's SslStream: large payloads both ways, close_notify, many concurrent handshakes.
public sealed class SslStreamClientTests
{
    private const int TenMegabytes = 10 * 1024 * 1024;

    [Theory]
    [InlineData(SslProtocols.Tls13)]
    [InlineData(SslProtocols.Tls12)]
    public async Task LargePayload_BothWays_VerifiedByHash(SslProtocols protocol)
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        byte[] payload = RandomNumberGenerator.GetBytes(TenMegabytes);
        await using (SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port, protocol))
        {
            using var timeout = new CancellationTokenSource(TestTimeouts.Long);
            // Write and read at once: the echo would fill both directions' buffers if one waited for the other.
            Task writer = Task.Run(async () =>
            {
                for (int offset = 0; offset < payload.Length; offset += 100_000)
                {
                    await client.Stream.WriteAsync(payload.AsMemory(offset, Math.Min(100_000, payload.Length - offset)), timeout.Token);
                }
            });
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[64 * 1024];
            long total = 0;
            while (total < payload.Length)
            {
                int read = await client.Stream.ReadAsync(buffer, timeout.Token);
                Assert.NotEqual(0, read);
                hash.AppendData(buffer, 0, read);
                total += read;
            }
            await writer;
            Assert.Equal(SHA256.HashData(payload), hash.GetHashAndReset());
            await client.Stream.ShutdownAsync();
            // The server answers close_notify with its own, then FIN: SslStream reads the end.
            Assert.Equal(0, await client.Stream.ReadAsync(buffer, timeout.Token));
        }
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(protocol, result.Protocol);
        Assert.Equal(TenMegabytes, result.BytesEchoed);
        Assert.Equal(ConnectionEnd.CloseNotify, result.End);
    }

    [Fact]
    public async Task ClientCloseWithoutCloseNotify_IsNormalEnd_ReportedApart()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port);
        await client.EchoAsync("no close_notify follows\n"u8.ToArray());
        // FIN without close_notify.
        client.Socket.Shutdown(SocketShutdown.Send);
        ConnectionResult result = await server.NextResultAsync();
        await client.DisposeAsync();
        Assert.Equal(ConnectionEnd.WithoutCloseNotify, result.End);
        Assert.Null(result.FailureReason);
    }

    [Fact]
    public async Task Alpn_SslStream_NegotiatesH2()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions
        {
            ServerCertificate = TestCertificates.Rsa,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
        });
        await using (SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port, applicationProtocols: [SslApplicationProtocol.Http11, SslApplicationProtocol.Http2]))
        {
            Assert.Equal(SslApplicationProtocol.Http2, client.Stream.NegotiatedApplicationProtocol);
            await client.EchoAsync("x\n"u8.ToArray());
        }
        Assert.Equal("h2", (await server.NextResultAsync()).ApplicationProtocol);
    }

    [Fact]
    public async Task ConcurrentHandshakes_AcrossSniNames_BuildEachContextOnce()
    {
        // Fresh certificate instances each call: the context cache must still build one native context per certificate.
        byte[] alpha = TestCertificates.Alpha.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12);
        byte[] beta = TestCertificates.Beta.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12);
        await using var server = new TlsEchoServer(new TlsServerOptions
        {
            ServerCertificate = TestCertificates.Rsa,
            ServerCertificateSelector = (_, name) => name switch
            {
                "alpha.test" => System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(alpha, null),
                "beta.test" => System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(beta, null),
                _ => null,
            },
        });
        string[] names = ["alpha.test", "beta.test", "localhost"];
        string[] expected = [TestCertificates.Alpha.Thumbprint, TestCertificates.Beta.Thumbprint, TestCertificates.Rsa.Thumbprint];
        Task[] clients = Enumerable.Range(0, 60).Select(i => Task.Run(async () =>
        {
            await using SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port, targetHost: names[i % 3]);
            Assert.Equal(expected[i % 3], client.Stream.RemoteCertificate!.GetCertHashString());
            await client.EchoAsync("sni\n"u8.ToArray());
        })).ToArray();
        await Task.WhenAll(clients).WaitAsync(TestTimeouts.Long);
        for (int i = 0; i < 60; i++)
        {
            Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
        }
        Assert.Equal(2, server.Context.SelectedContextCount);
    }

    [Fact]
    public async Task ManyConcurrentHandshakes_AllComplete()
    {
        const int Count = 200;
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        Task[] clients = Enumerable.Range(0, Count).Select(i => Task.Run(async () =>
        {
            await using SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port);
            await client.EchoAsync(System.Text.Encoding.ASCII.GetBytes($"client {i}\n"));
            await client.Stream.ShutdownAsync();
        })).ToArray();
        await Task.WhenAll(clients).WaitAsync(TestTimeouts.Long);
        for (int i = 0; i < Count; i++)
        {
            ConnectionResult result = await server.NextResultAsync();
            Assert.True(result.Handshake == TlsHandshakeStatus.Completed, result.ToString());
            Assert.True(result.ErrorQueueEmptyAfterEnd);
        }
    }
}
