using System.Net;
using System.Net.Http;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MegaPipe.Transport.FunctionalTests;

// HTTPS with a self-signed certificate created in-process.
public abstract partial class TransportTests
{
    [Fact]
    public async Task Https_SelfSignedCertificate_Http11AndHttp2()
    {
        X509Certificate2 certificate = TestCertificate.Certificate;
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app), kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(certificate);
        }));
        Assert.Equal("https", server.BaseAddress.Scheme);
        string? seen = null;
        using HttpClient client = CreateClient(server, handler => handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) =>
        {
            seen = presented?.GetCertHashString();
            return presented is not null && presented.GetCertHashString() == certificate.Thumbprint;
        });

        // HTTP/1.1 over TLS: a small and a 10 MB body each way.
        using (HttpResponseMessage response = await client.GetAsync("/hello"))
        {
            Assert.Equal(HttpVersion.Version11, response.Version);
            Assert.Equal(CommonEndpoints.Hello, await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(certificate.Thumbprint, seen);
        ReadOnlyMemory<byte> payload = TestData.Payload(TestData.TenMegabytes);
        using (var content = new ReadOnlyMemoryContent(payload))
        using (HttpResponseMessage response = await client.PostAsync("/sha256", content))
        {
            Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        }
        byte[] downloaded = await client.GetByteArrayAsync($"/bytes/{TestData.TenMegabytes}");
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(downloaded));

        // HTTP/2 negotiated by ALPN.
        using var request = new HttpRequestMessage(HttpMethod.Get, "/hello") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using HttpResponseMessage h2 = await client.SendAsync(request);
        Assert.Equal(HttpVersion.Version20, h2.Version);
        Assert.Equal(CommonEndpoints.Hello, await h2.Content.ReadAsStringAsync());
        server.AssertNoErrorsLogged();
    }
}
