using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// Client certificates required, optional and rejected, with openssl s_client and SslStream.
public sealed class ClientCertificateTests
{
    private static readonly Lazy<(string Certificate, string Key)> s_clientPem = new(() => TestCertificates.WritePem(TestCertificates.Client, "client"));

    private static TlsServerOptions Options(TlsClientCertificateMode mode, Func<X509Certificate2, X509Chain?, SslPolicyErrors, bool>? validation) => new()
    {
        ServerCertificate = TestCertificates.Rsa,
        ClientCertificateMode = mode,
        ClientCertificateValidation = validation,
    };

    [Theory]
    [InlineData("-tls1_3")]
    [InlineData("-tls1_2")]
    public async Task Required_WithAcceptedCertificate_SeesIt(string protocol)
    {
        SslPolicyErrors? errorsSeen = null;
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, (certificate, chain, errors) =>
        {
            errorsSeen = errors;
            return certificate.Thumbprint == TestCertificates.Client.Thumbprint;
        }));
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, protocol, "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key);
        ConnectionResult result = await server.NextResultAsync();
        Assert.True(result.Handshake == TlsHandshakeStatus.Completed, result.ToString());
        Assert.Equal(TestCertificates.Client.Subject, result.ClientCertificateSubject);
        // Self-signed and not trusted: the callback saw the chain error and chose to accept.
        Assert.Equal(SslPolicyErrors.RemoteCertificateChainErrors, errorsSeen);
    }

    [Fact]
    public async Task Required_WithoutCertificate_Fails()
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, (_, _, _) => true));
        using ClientProcess client = await OpenSslClient.RefusedAsync(server.Port, "-tls1_2");
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("peer did not return a certificate", result.FailureReason);
    }

    [Fact]
    public async Task Allowed_WithoutCertificate_Succeeds()
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.AllowCertificate, (_, _, _) => true));
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port);
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Completed, result.Handshake);
        Assert.Null(result.ClientCertificateSubject);
    }

    [Fact]
    public async Task Allowed_WithCertificate_SeesIt()
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.AllowCertificate, (_, _, _) => true));
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key);
        Assert.Equal(TestCertificates.Client.Subject, (await server.NextResultAsync()).ClientCertificateSubject);
    }

    [Theory]
    [InlineData("-tls1_3")]
    [InlineData("-tls1_2")]
    public async Task RejectedByCallback_FailsWithReason(string protocol)
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, (_, _, _) => false));
        using ClientProcess client = OpenSslClient.Start(server.Port, protocol, "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key);
        // In TLS 1.3 the client may believe the handshake done before it reads the server's alert; either way the server fails it.
        client.CloseInput();
        await client.WaitForExitAsync();
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("ClientCertificateValidation rejected the client certificate 'CN=MegaPipe test client'", result.FailureReason);
        Assert.True(result.ErrorQueueEmptyAfterEnd);
    }

    [Fact]
    public async Task DefaultValidation_RejectsUntrustedCertificate()
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, validation: null));
        using ClientProcess client = OpenSslClient.Start(server.Port, "-tls1_2", "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key);
        client.CloseInput();
        await client.WaitForExitAsync();
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("was rejected", result.FailureReason);
        Assert.Contains("UntrustedRoot", result.FailureReason);
    }

    [Fact]
    public async Task ValidationCallbackThrows_FailsThatHandshakeOnly()
    {
        int calls = 0;
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, (_, _, _) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                throw new InvalidOperationException("validator exploded");
            }
            return true;
        }));
        using (ClientProcess first = OpenSslClient.Start(server.Port, "-tls1_2", "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key))
        {
            first.CloseInput();
            await first.WaitForExitAsync();
        }
        ConnectionResult failed = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, failed.Handshake);
        Assert.Contains("validator exploded", failed.FailureReason);
        using ClientProcess second = await OpenSslClient.ExchangeAsync(server.Port, "-tls1_2", "-cert", s_clientPem.Value.Certificate, "-key", s_clientPem.Value.Key);
        Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
    }

    [Fact]
    public async Task SslStreamClientCertificate_Required()
    {
        await using var server = new TlsEchoServer(Options(TlsClientCertificateMode.RequireCertificate, (c, _, _) => c.Thumbprint == TestCertificates.Client.Thumbprint));
        await using (SslStreamClient client = await SslStreamClient.ConnectAsync(server.Port, clientCertificate: TestCertificates.Client))
        {
            await client.EchoAsync("with a certificate\n"u8.ToArray());
            await client.Stream.ShutdownAsync();
        }
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TestCertificates.Client.Subject, result.ClientCertificateSubject);
    }
}
