using System.Net.Security;
using System.Security.Authentication;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// The engine against `openssl s_client`: protocols, ciphers, renegotiation, resumption, ALPN, SNI.
public sealed class OpenSslClientTests
{
    private static TlsServerOptions DefaultOptions() => new() { ServerCertificate = TestCertificates.Rsa };

    [Fact]
    public async Task Tls13_HandshakeAndEcho_ReportsProtocolAndCipher()
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-tls1_3");
        ConnectionResult result = await server.NextResultAsync();
        Assert.True(result.Handshake == TlsHandshakeStatus.Completed, result.ToString());
        Assert.Equal(SslProtocols.Tls13, result.Protocol);
        Assert.Equal("TLS_AES_128_GCM_SHA256", result.CipherSuiteName);
        Assert.Equal(TlsCipherSuite.TLS_AES_128_GCM_SHA256, result.CipherSuite);
        Assert.Equal(ConnectionEnd.CloseNotify, result.End);
        Assert.Contains("New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256", client.Output);
        Assert.True(result.ErrorQueueEmptyAfterEnd);
    }

    [Fact]
    public async Task Tls12_UsesEcdheAeadSuite()
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-tls1_2");
        ConnectionResult result = await server.NextResultAsync();
        Assert.True(result.Handshake == TlsHandshakeStatus.Completed, result.ToString());
        Assert.Equal(SslProtocols.Tls12, result.Protocol);
        Assert.Equal("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", result.CipherSuiteName);
        Assert.Equal(TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, result.CipherSuite);
        Assert.Contains("Cipher is ECDHE-RSA-AES128-GCM-SHA256", client.Output);
    }

    [Theory]
    [InlineData("-tls1")]
    [InlineData("-tls1_1")]
    public async Task OldProtocolOnlyClient_IsRefused(string protocol)
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        // Security level 0 on the client so that it really offers the old protocol.
        using ClientProcess client = await OpenSslClient.RefusedAsync(server.Port, protocol, "-cipher", "DEFAULT:@SECLEVEL=0");
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("unsupported protocol", result.FailureReason);
        Assert.NotEqual(0, client.ExitCode);
        Assert.True(result.ErrorQueueEmptyAfterEnd);
    }

    [Theory]
    [InlineData("ECDHE-RSA-AES128-SHA256")] // CBC
    [InlineData("AES128-GCM-SHA256")]       // static RSA key exchange
    [InlineData("DHE-RSA-AES128-GCM-SHA256")] // finite-field DHE
    public async Task Tls12WeakCipherOnlyClient_IsRefused(string cipher)
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        using ClientProcess client = await OpenSslClient.RefusedAsync(server.Port, "-tls1_2", "-cipher", cipher);
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("no shared cipher", result.FailureReason);
        Assert.NotEqual(0, client.ExitCode);
    }

    [Fact]
    public async Task Tls12Renegotiation_IsRefused()
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        using ClientProcess client = OpenSslClient.Start(server.Port, "-tls1_2");
        await client.WaitForOutputAsync("---\n");
        await client.WriteLineAsync("before");
        await client.WaitForOutputAsync("before");
        await client.WriteLineAsync("R");
        await client.WaitForExitAsync();
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Completed, result.Handshake);
        Assert.Contains("RENEGOTIATING", client.Output + client.Errors);
        // The server answered the renegotiation ClientHello with no_renegotiation; the client gave up on the connection.
        Assert.Contains("no renegotiation", client.Errors, StringComparison.OrdinalIgnoreCase);
        Assert.NotEqual(ConnectionEnd.CloseNotify, result.End);
    }

    [Fact]
    public async Task Tls13KeyUpdate_IsAnswered_AndTrafficContinues()
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        using ClientProcess client = OpenSslClient.Start(server.Port, "-tls1_3");
        await client.WaitForOutputAsync("---\n");
        await client.WriteLineAsync("before the update");
        await client.WaitForOutputAsync("before the update");
        // "K": a KeyUpdate that requests one back; the server's answer is post-handshake output of a Decrypt.
        await client.WriteLineAsync("K");
        await client.WaitForOutputAsync("KEYUPDATE");
        await client.WriteLineAsync("after the update");
        await client.WaitForOutputAsync("after the update");
        client.CloseInput();
        await client.WaitForExitAsync();
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(ConnectionEnd.CloseNotify, result.End);
        Assert.Null(result.FailureReason);
    }

    [Fact]
    public async Task SelectorThrows_FailsThatHandshake_WithReason()
    {
        var options = new TlsServerOptions
        {
            ServerCertificate = TestCertificates.Rsa,
            ServerCertificateSelector = (_, name) => name == "boom.test" ? throw new InvalidOperationException("selector exploded") : null,
        };
        await using var server = new TlsEchoServer(options);
        using (ClientProcess bad = await OpenSslClient.RefusedAsync(server.Port, "-servername", "boom.test"))
        {
            ConnectionResult failed = await server.NextResultAsync();
            Assert.Equal(TlsHandshakeStatus.Failed, failed.Handshake);
            Assert.Contains("ServerCertificateSelector threw InvalidOperationException for host name 'boom.test': selector exploded", failed.FailureReason);
        }
        using ClientProcess good = await OpenSslClient.ExchangeAsync(server.Port, "-servername", "fine.test");
        Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
    }

    [Theory]
    [InlineData("-tls1_3")]
    [InlineData("-tls1_2")]
    public async Task SessionResumption_ObservedByClient(string protocol)
    {
        await using var server = new TlsEchoServer(DefaultOptions());
        string sessionFile = Path.Combine(TestCertificates.Directory, $"session{protocol}-{Guid.NewGuid():N}.pem");
        using (ClientProcess first = await OpenSslClient.ExchangeAsync(server.Port, protocol, "-sess_out", sessionFile))
        {
            Assert.Contains("New, TLSv1.", first.Output);
        }
        Assert.False((await server.NextResultAsync()).IsResumed);
        using ClientProcess second = await OpenSslClient.ExchangeAsync(server.Port, protocol, "-sess_in", sessionFile);
        ConnectionResult resumed = await server.NextResultAsync();
        Assert.True(resumed.IsResumed, resumed.ToString());
        Assert.Contains("Reused, TLSv1.", second.Output);
    }

    [Theory]
    [InlineData("h2", "h2")]
    [InlineData("http/1.1", "http/1.1")]
    [InlineData("http/1.1,h2", "h2")] // the server's preference wins
    public async Task Alpn_NegotiatesServerPreference(string offered, string expected)
    {
        TlsServerOptions options = DefaultOptions();
        options.ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];
        await using var server = new TlsEchoServer(options);
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-alpn", offered);
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(expected, result.ApplicationProtocol);
        Assert.Contains("ALPN protocol: " + expected, client.Output);
    }

    [Fact]
    public async Task Alpn_NoOverlap_FailsWithNoApplicationProtocol()
    {
        TlsServerOptions options = DefaultOptions();
        options.ApplicationProtocols = [SslApplicationProtocol.Http11];
        await using var server = new TlsEchoServer(options);
        using ClientProcess client = await OpenSslClient.RefusedAsync(server.Port, "-alpn", "h2");
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("none of the server's ALPN protocols", result.FailureReason);
        Assert.Contains("no application protocol", client.Errors, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Alpn_ClientWithoutAlpn_NegotiatesNone()
    {
        TlsServerOptions options = DefaultOptions();
        options.ApplicationProtocols = [SslApplicationProtocol.Http2];
        await using var server = new TlsEchoServer(options);
        using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port);
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Completed, result.Handshake);
        Assert.Equal("", result.ApplicationProtocol);
        Assert.Contains("No ALPN negotiated", client.Output);
    }

    [Fact]
    public async Task Sni_SelectsBetweenTwoCertificates()
    {
        var seen = new List<string?>();
        var options = new TlsServerOptions
        {
            ServerCertificate = TestCertificates.Rsa,
            ServerCertificateSelector = (_, name) =>
            {
                lock (seen)
                {
                    seen.Add(name);
                }
                return name switch
                {
                    "alpha.test" => TestCertificates.Alpha,
                    "beta.test" => TestCertificates.Beta,
                    _ => null, // falls back to ServerCertificate
                };
            },
        };
        await using var server = new TlsEchoServer(options);
        foreach ((string name, string subject) in new[] { ("alpha.test", "CN = alpha.test"), ("beta.test", "CN = beta.test"), ("alpha.test", "CN = alpha.test"), ("other.test", "CN = localhost") })
        {
            using ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-servername", name);
            ConnectionResult result = await server.NextResultAsync();
            Assert.True(result.Handshake == TlsHandshakeStatus.Completed, result.ToString());
            Assert.Equal(name, result.HostName);
            Assert.Contains("subject=" + subject, client.Output);
        }
        Assert.Equal(["alpha.test", "beta.test", "alpha.test", "other.test"], seen);
    }

    [Fact]
    public async Task Sni_OnlySelector_NoCertificateForName_FailsWithReason()
    {
        var options = new TlsServerOptions { ServerCertificateSelector = (_, name) => name == "alpha.test" ? TestCertificates.Alpha : null };
        await using var server = new TlsEchoServer(options);
        using (ClientProcess good = await OpenSslClient.ExchangeAsync(server.Port, "-servername", "alpha.test"))
        {
            Assert.Contains("subject=CN = alpha.test", good.Output);
        }
        Assert.Equal(TlsHandshakeStatus.Completed, (await server.NextResultAsync()).Handshake);
        using ClientProcess bad = await OpenSslClient.RefusedAsync(server.Port, "-servername", "unknown.test");
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("returned no certificate for host name 'unknown.test'", result.FailureReason);
        Assert.Contains("unrecognized name", bad.Errors, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Sni_ControlCharactersInHostName_AreEscapedInReason()
    {
        var options = new TlsServerOptions { ServerCertificateSelector = (_, _) => null };
        await using var server = new TlsEchoServer(options);
        using ClientProcess client = await OpenSslClient.RefusedAsync(server.Port, "-servername", "evil.test\r\nFORGED LOG LINE");
        ConnectionResult result = await server.NextResultAsync();
        Assert.Equal(TlsHandshakeStatus.Failed, result.Handshake);
        Assert.Contains("host name 'evil.test\\x0d\\x0aFORGED LOG LINE'", result.FailureReason);
        Assert.DoesNotContain('\n', result.FailureReason!);
    }

    [Fact]
    public async Task EcdsaCertificate_Tls12AndTls13()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using (ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-tls1_2"))
        {
            Assert.Contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256", client.Output);
        }
        Assert.Equal(TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, (await server.NextResultAsync()).CipherSuite);
        using (ClientProcess client = await OpenSslClient.ExchangeAsync(server.Port, "-tls1_3"))
        {
            Assert.Contains("Peer signature type: ECDSA", client.Output);
        }
        Assert.Equal(SslProtocols.Tls13, (await server.NextResultAsync()).Protocol);
    }
}
