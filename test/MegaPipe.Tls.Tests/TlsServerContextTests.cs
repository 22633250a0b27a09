using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// Configuration is checked when the context is created, with messages that say what is wrong.
public sealed class TlsServerContextTests
{
    [Fact]
    public void MismatchedPrivateKey_FailsAtCreation_SayingSo()
    {
        using RSA other = RSA.Create(2048);
        using X509Certificate2 publicOnly = X509CertificateLoader.LoadCertificate(TestCertificates.Rsa.RawData);
        var options = new TlsServerOptions { ServerCertificate = publicOnly, ServerPrivateKey = other };
        TlsException e = Assert.Throws<TlsException>(() => new TlsServerContext(options));
        Assert.Contains("the private key does not match the certificate 'CN=localhost'", e.Message);
        Assert.Contains("key values mismatch", e.Message); // OpenSSL's own reason
        Assert.Equal(0ul, Interop.ERR_get_error());
    }

    [Fact]
    public void MismatchedPemFiles_FailAtCreation_SayingSo()
    {
        (string certificate, _) = TestCertificates.WritePem(TestCertificates.Rsa, "mismatch-a");
        (_, string key) = TestCertificates.WritePem(TestCertificates.CreateServer("localhost", ecdsa: false), "mismatch-b");
        TlsServerOptions options = new TlsServerOptions().UsePemFiles(certificate, key);
        TlsException e = Assert.Throws<TlsException>(() => new TlsServerContext(options));
        Assert.Contains("does not match", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PemFiles_RsaAndEcdsa_Serve(bool ecdsa)
    {
        X509Certificate2 source = ecdsa ? TestCertificates.Ecdsa : TestCertificates.Rsa;
        (string certificate, string key) = TestCertificates.WritePem(source, ecdsa ? "pem-ecdsa" : "pem-rsa");
        using var server = new TlsServerContext(new TlsServerOptions().UsePemFiles(certificate, key));
        using var client = new TlsClientContext();
        using var pair = new InProcessPair(server, client);
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        Assert.Equal(source.Thumbprint, pair.Client.RemoteCertificate!.Thumbprint);
    }

    [Fact]
    public void EncryptedPemKey_NeedsItsPassword()
    {
        string certificate = Path.Combine(TestCertificates.Directory, "enc.crt");
        string key = Path.Combine(TestCertificates.Directory, "enc.key");
        File.WriteAllText(certificate, TestCertificates.Rsa.ExportCertificatePem());
        using (RSA rsa = TestCertificates.Rsa.GetRSAPrivateKey()!)
        {
            File.WriteAllText(key, rsa.ExportEncryptedPkcs8PrivateKeyPem("secret", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000)));
        }
        Assert.Throws<ArgumentException>(() => new TlsServerOptions().UsePemFiles(certificate, key));
        using var server = new TlsServerContext(new TlsServerOptions().UsePemFiles(certificate, key, "secret"));
    }

    [Fact]
    public async Task PfxFile_WithChain_ServesLeafAndSendsChain()
    {
        using ECDsa caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=MegaPipe test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        using ECDsa leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=leaf.test", leafKey, HashAlgorithmName.SHA256);
        using X509Certificate2 leafPublic = leafRequest.Create(ca, now.AddMinutes(-5), now.AddDays(1), [1, 2, 3, 4]);
        using X509Certificate2 leaf = leafPublic.CopyWithPrivateKey(leafKey);
        string path = Path.Combine(TestCertificates.Directory, "chain.pfx");
        File.WriteAllBytes(path, new X509Certificate2Collection { leaf, X509CertificateLoader.LoadCertificate(ca.RawData) }.Export(X509ContentType.Pkcs12, "pw")!);

        TlsServerOptions options = new TlsServerOptions().UsePfxFile(path, "pw");
        Assert.Equal("CN=leaf.test", options.ServerCertificate!.Subject);
        Assert.Single(options.ServerCertificateChain!);
        await using var server = new TlsEchoServer(options);
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-showcerts");
        Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
        // The chain as the client received it: the leaf at depth 0, the intermediate from the PFX at depth 1.
        Assert.Contains(" 0 s:CN = leaf.test", client.Output);
        Assert.Contains(" 1 s:CN = MegaPipe test CA", client.Output);
    }

#pragma warning disable CS0618, SYSLIB0039 // the point is to refuse them
    [Theory]
    [InlineData(SslProtocols.Tls11)]
    [InlineData(SslProtocols.Tls)]
    [InlineData(SslProtocols.Tls | SslProtocols.Tls12)]
    [InlineData(SslProtocols.Ssl3)]
#pragma warning restore CS0618, SYSLIB0039
    public void OldProtocols_AreRefused(SslProtocols protocols)
    {
        var options = new TlsServerOptions { ServerCertificate = TestCertificates.Rsa, SslProtocols = protocols };
        ArgumentException e = Assert.Throws<ArgumentException>(() => new TlsServerContext(options));
        Assert.Contains("only Tls12 and Tls13 are supported", e.Message);
    }

    [Fact]
    public void MissingCertificate_IsRefused()
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => new TlsServerContext(new TlsServerOptions()));
        Assert.Contains("A server certificate is required", e.Message);
    }

    [Fact]
    public void CertificateWithoutPrivateKey_IsRefused()
    {
        using X509Certificate2 publicOnly = X509CertificateLoader.LoadCertificate(TestCertificates.Rsa.RawData);
        ArgumentException e = Assert.Throws<ArgumentException>(() => new TlsServerContext(new TlsServerOptions { ServerCertificate = publicOnly }));
        Assert.Contains("has no private key", e.Message);
    }

    [Fact]
    public void NonPositiveRotationInterval_IsRefused()
    {
        var options = new TlsServerOptions { ServerCertificate = TestCertificates.Rsa, SessionTicketKeyRotationInterval = TimeSpan.Zero };
        Assert.Throws<ArgumentException>(() => new TlsServerContext(options));
    }
}
