using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.StaticServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MegaPipe.StaticServer.Tests;

/// <summary>
/// --https_url / --cert / --key, as nginx's listen ssl / ssl_certificate / ssl_certificate_key: files over TLS on the
/// channels (or Kestrel's SslStream with --tls sslstream, or on the Sockets transport), HTTP/2 by ALPN, bodies intact.
/// </summary>
public sealed class HttpsTests : IDisposable
{
    private readonly TempSite _site = new();
    private readonly string _certificate;
    private readonly string _key;
    private readonly string _thumbprint;

    public HttpsTests()
    {
        using RSA key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        _thumbprint = certificate.Thumbprint;
        _certificate = Path.Combine(_site.Base, "cert.pem");
        _key = Path.Combine(_site.Base, "key.pem");
        File.WriteAllText(_certificate, certificate.ExportCertificatePem());
        File.WriteAllText(_key, key.ExportPkcs8PrivateKeyPem());
    }

    public void Dispose() => _site.Dispose();

    [Theory]
    [InlineData("megapipe", "channel", "channel")]
    [InlineData("megapipe", "sslstream", "sslstream")]
    [InlineData("sockets", "channel", "sslstream")]
    public async Task Https_ServesFiles_OverHttp11AndHttp2(string transport, string tls, string expectedTerminator)
    {
        byte[] large = new byte[1024 * 1024 + 17];
        new Random(3).NextBytes(large);
        _site.Write("big.bin", large, DateTime.UtcNow.AddHours(-1));
        _site.Write("index.html", "<p>hello over TLS</p>", DateTime.UtcNow.AddHours(-1));
        string? terminator = null;
        WebApplication app = StaticServerApp.Build(
            ["--root", _site.Root, "--https_url", "https://127.0.0.1:0", "--urls", "http://127.0.0.1:0", "--cert", _certificate, "--key", _key, "--tls", tls, "--transport", transport],
            configureApp: a => a.Use((HttpContext context, RequestDelegate next) =>
            {
                terminator = context.Features.Get<ISslStreamFeature>() is not null ? "sslstream" : context.Request.IsHttps ? "channel" : "plain";
                return next(context);
            }));
        await using (app)
        {
            await app.StartAsync().WaitAsync(TestTimeouts.Default);
            string[] addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToArray();
            Uri https = new(addresses.Single(a => a.StartsWith("https://", StringComparison.Ordinal)));
            Uri http = new(addresses.Single(a => a.StartsWith("http://", StringComparison.Ordinal)));
            foreach (Version version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
            {
                using var client = new HttpClient(new SocketsHttpHandler
                {
                    SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == _thumbprint },
                })
                { BaseAddress = https, DefaultRequestVersion = version, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = TestTimeouts.Default };
                using HttpResponseMessage index = await client.GetAsync("/");
                Assert.Equal(version, index.Version);
                Assert.Equal("<p>hello over TLS</p>", await index.Content.ReadAsStringAsync());
                Assert.Equal(expectedTerminator, terminator);
                byte[] body = await client.GetByteArrayAsync("/big.bin");
                Assert.Equal(SHA256.HashData(large), SHA256.HashData(body));
            }
            // Plain HTTP still where --urls says.
            using var plain = new HttpClient { BaseAddress = http, Timeout = TestTimeouts.Default };
            Assert.Equal("<p>hello over TLS</p>", await plain.GetStringAsync("/"));
            Assert.Equal("plain", terminator);
            await app.StopAsync().WaitAsync(TestTimeouts.Default);
        }
    }

    [Fact]
    public void HttpsWithoutTheKey_IsRefusedWithTheDirective()
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => StaticServerApp.Build(["--root", _site.Root, "--https_url", "https://127.0.0.1:0", "--cert", _certificate]));
        Assert.Contains("--key", e.Message, StringComparison.Ordinal);
        Assert.Contains("ssl_certificate_key", e.Message, StringComparison.Ordinal);
    }
}
