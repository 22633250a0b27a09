using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;

namespace MegaPipe.Transport.FunctionalTests;

// HTTPS, every case twice: Kestrel's UseHttps (SslStream above the transport, the reference) and UseMegaPipeHttps
// (TLS terminated on the channel thread on MegaPipe; Kestrel's SslStream fallback on the Sockets transport). Real
// clients: HttpClient / SslStream, curl, h2load, openssl s_client and Python's ssl module.
public abstract partial class TransportTests
{
    // Who terminates TLS for an endpoint set up with `mode` on this transport.
    protected string ExpectedTerminator(HttpsMode mode) => mode == HttpsMode.UseMegaPipeHttps && Transport.IsMegaPipe() ? TlsInfo.Channel : TlsInfo.SslStream;

    protected Task<TestServer> StartHttpsServerAsync(
        HttpsMode mode,
        Action<HttpsConnectionAdapterOptions>? configureHttps = null,
        Action<WebApplication>? configureApp = null,
        HttpProtocols protocols = HttpProtocols.Http1AndHttp2,
        Action<ListenOptions>? beforeHttps = null)
        => TestServer.StartAsync(
            Transport,
            app =>
            {
                CommonEndpoints.Map(app);
                TlsEndpoints.Map(app);
                configureApp?.Invoke(app);
            },
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                listen.Protocols = protocols;
                beforeHttps?.Invoke(listen);
                listen.UseHttps(mode, TestCertificates.Rsa, configureHttps);
            }),
            output: Output);

    protected static HttpClient CreateHttpsClient(TestServer server, Action<SocketsHttpHandler>? configure = null) => CreateClient(server, handler =>
    {
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == TestCertificates.Rsa.Thumbprint;
        configure?.Invoke(handler);
    });

    protected static SslClientAuthenticationOptions TlsClientOptions(string targetHost = "localhost", X509Certificate2? clientCertificate = null, SslProtocols protocols = SslProtocols.None)
        => new()
        {
            TargetHost = targetHost,
            EnabledSslProtocols = protocols,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            // The tests check the certificate they expect themselves.
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            ClientCertificates = clientCertificate is null ? null : new X509CertificateCollection { clientCertificate },
        };

    protected static async Task<TlsInfo> GetTlsInfoAsync(RawHttpConnection connection)
    {
        RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/tls"));
        Assert.Equal(200, response.StatusCode);
        return TlsInfo.Parse(response.BodyText);
    }

    // The server still serves HTTPS (terminated as expected) on fresh connections, and logged no error.
    protected async Task AssertHttpsServesAsync(TestServer server, HttpsMode mode, params string[] allowedErrorEvents)
    {
        for (int i = 0; i < 2; i++)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions());
            Assert.Equal(ExpectedTerminator(mode), (await GetTlsInfoAsync(connection)).Terminator);
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
            Assert.Equal(CommonEndpoints.Hello, response.BodyText);
        }
        server.AssertNoErrorsLogged(allowedErrorEvents);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_Http11AndHttp2ByAlpn_TenMegabytesBothWays(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        Assert.Equal("https", server.BaseAddress.Scheme);
        using HttpClient client = CreateHttpsClient(server);

        TlsInfo h1 = TlsInfo.Parse(await client.GetStringAsync("/tls"));
        Assert.Equal(ExpectedTerminator(mode), h1.Terminator);
        Assert.Equal(nameof(SslProtocols.Tls13), h1.Protocol);
        Assert.StartsWith("TLS_AES_", h1.CipherSuite, StringComparison.Ordinal);
        Assert.Equal("https+IsHttps", h1.Scheme);
        Assert.Equal("HTTP/1.1", h1.HttpProtocol);
        // HttpClient offers no ALPN for HTTP/1.1; a client that offers http/1.1 gets it.
        using (RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions()))
        {
            Assert.Equal("http/1.1", (await GetTlsInfoAsync(connection)).ApplicationProtocol);
        }

        ReadOnlyMemory<byte> payload = TestData.Payload(TestData.TenMegabytes);
        using (var content = new ReadOnlyMemoryContent(payload))
        using (HttpResponseMessage response = await client.PostAsync("/sha256", content))
        {
            Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        }
        byte[] downloaded = await client.GetByteArrayAsync($"/bytes/{TestData.TenMegabytes}");
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(downloaded));

        // HTTP/2 chosen by ALPN, and a 10 MB body each way on it too.
        using var h2Client = CreateHttpsClient(server, handler => handler.SslOptions.ApplicationProtocols = [SslApplicationProtocol.Http2]);
        h2Client.DefaultRequestVersion = HttpVersion.Version20;
        h2Client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using (HttpResponseMessage response = await h2Client.GetAsync("/tls"))
        {
            Assert.Equal(HttpVersion.Version20, response.Version);
            TlsInfo h2 = TlsInfo.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("h2", h2.ApplicationProtocol);
            Assert.Equal("HTTP/2", h2.HttpProtocol);
            Assert.Equal(ExpectedTerminator(mode), h2.Terminator);
        }
        using (var content = new ReadOnlyMemoryContent(payload))
        using (HttpResponseMessage response = await h2Client.PostAsync("/sha256", content))
        {
            Assert.Equal($"{TestData.TenMegabytes} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(await h2Client.GetByteArrayAsync($"/bytes/{TestData.TenMegabytes}")));
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_CurlAndH2Load(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using (ClientProcess curl = await TlsClients.CurlAsync(server.EndPoint, "/tls", "--http2"))
        {
            Assert.True(curl.ExitCode == 0, curl.ToString());
            string[] lines = curl.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("2", lines[^1]);
            TlsInfo info = TlsInfo.Parse(lines[0]);
            Assert.Equal(ExpectedTerminator(mode), info.Terminator);
            Assert.Equal("h2", info.ApplicationProtocol);
        }
        using (ClientProcess curl = await TlsClients.CurlAsync(server.EndPoint, "/hello", "--http1.1"))
        {
            Assert.True(curl.ExitCode == 0, curl.ToString());
            Assert.Equal($"{CommonEndpoints.Hello}\n1.1\n", curl.Output.Replace("\r", "", StringComparison.Ordinal).Replace(Environment.NewLine, "\n", StringComparison.Ordinal));
        }
        // Many concurrent streams on a few connections.
        using (ClientProcess h2load = await TlsClients.H2LoadAsync(server.EndPoint, "/hello", requests: 2000, clients: 4, streams: 16))
        {
            Assert.True(h2load.ExitCode == 0, h2load.ToString());
            Assert.Contains("Application protocol: h2", h2load.Output, StringComparison.Ordinal);
            Assert.Contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored", h2load.Output, StringComparison.Ordinal);
        }
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_WebSocketEcho(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode, configureApp: app =>
        {
            app.UseWebSockets();
            app.Map("/ws", async (HttpContext context) =>
            {
                using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
                byte[] buffer = new byte[16 * 1024];
                while (true)
                {
                    ValueWebSocketReceiveResult received = await socket.ReceiveAsync(buffer.AsMemory(), context.RequestAborted);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                        return;
                    }
                    await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
                }
            });
        });
        using var client = new ClientWebSocket();
        client.Options.RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == TestCertificates.Rsa.Thumbprint;
        using var timeout = new CancellationTokenSource(TestTimeouts.Long);
        await client.ConnectAsync(new UriBuilder(server.BaseAddress) { Scheme = "wss", Path = "/ws" }.Uri, timeout.Token);
        for (int i = 0; i < 20; i++)
        {
            await client.SendAsync(Encoding.UTF8.GetBytes($"message {i}"), WebSocketMessageType.Text, true, timeout.Token);
            (WebSocketMessageType type, byte[] echoed) = await ReceiveMessageAsync(client, timeout.Token);
            Assert.Equal(WebSocketMessageType.Text, type);
            Assert.Equal($"message {i}", Encoding.UTF8.GetString(echoed));
        }
        ReadOnlyMemory<byte> payload = TestData.Payload(1024 * 1024);
        await client.SendAsync(payload, WebSocketMessageType.Binary, true, timeout.Token);
        (_, byte[] binary) = await ReceiveMessageAsync(client, timeout.Token);
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(binary));
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        await AssertHttpsServesAsync(server, mode);
    }

    public enum ClientCertificateCase
    {
        RequiredAndSent,
        RequiredNotSent,
        RequiredRejected,
        OptionalNotSent,
        OptionalSent,
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps, ClientCertificateCase.RequiredAndSent)]
    [InlineData(HttpsMode.UseMegaPipeHttps, ClientCertificateCase.RequiredAndSent)]
    [InlineData(HttpsMode.UseHttps, ClientCertificateCase.RequiredNotSent)]
    [InlineData(HttpsMode.UseMegaPipeHttps, ClientCertificateCase.RequiredNotSent)]
    [InlineData(HttpsMode.UseHttps, ClientCertificateCase.RequiredRejected)]
    [InlineData(HttpsMode.UseMegaPipeHttps, ClientCertificateCase.RequiredRejected)]
    [InlineData(HttpsMode.UseHttps, ClientCertificateCase.OptionalNotSent)]
    [InlineData(HttpsMode.UseMegaPipeHttps, ClientCertificateCase.OptionalNotSent)]
    [InlineData(HttpsMode.UseHttps, ClientCertificateCase.OptionalSent)]
    [InlineData(HttpsMode.UseMegaPipeHttps, ClientCertificateCase.OptionalSent)]
    public async Task Https_ClientCertificates(HttpsMode mode, ClientCertificateCase certificateCase)
    {
        bool required = certificateCase is ClientCertificateCase.RequiredAndSent or ClientCertificateCase.RequiredNotSent or ClientCertificateCase.RequiredRejected;
        bool send = certificateCase is not (ClientCertificateCase.RequiredNotSent or ClientCertificateCase.OptionalNotSent);
        bool accept = certificateCase != ClientCertificateCase.RequiredRejected;
        int validations = 0;
        await using TestServer server = await StartHttpsServerAsync(mode, https =>
        {
            https.ClientCertificateMode = required ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate;
            https.CheckCertificateRevocation = false;
            https.ClientCertificateValidation = (certificate, _, _) =>
            {
                Interlocked.Increment(ref validations);
                return accept && certificate.Thumbprint == TestCertificates.Client.Thumbprint;
            };
        });
        X509Certificate2? clientCertificate = send ? TestCertificates.Client : null;
        bool succeeds = send ? accept : !required;
        if (succeeds)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions(clientCertificate: clientCertificate));
            TlsInfo info = await GetTlsInfoAsync(connection);
            Assert.Equal(ExpectedTerminator(mode), info.Terminator);
            Assert.Equal(send ? TestCertificates.Client.Subject : "-", info.ClientCertificate);
            Assert.Equal(send ? 1 : 0, Volatile.Read(ref validations));
            if (send)
            {
                // curl, with the certificate and key as PEM files.
                (string certificateFile, string keyFile) = TestCertificates.WritePem(TestCertificates.Client, "client");
                using ClientProcess curl = await TlsClients.CurlAsync(server.EndPoint, "/tls", "--cert", certificateFile, "--key", keyFile);
                Assert.True(curl.ExitCode == 0, curl.ToString());
                Assert.Equal(TestCertificates.Client.Subject, TlsInfo.Parse(curl.Output.Split('\n')[0]).ClientCertificate);
            }
        }
        else
        {
            // TLS 1.3 clients finish their side before the server has seen their certificate: the refusal (an alert
            // and the close) reaches them at the handshake or at the first read.
            await Assert.ThrowsAnyAsync<Exception>(async () =>
            {
                using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions(clientCertificate: clientCertificate));
                await GetTlsInfoAsync(connection);
            });
            string failure = ExpectedTerminator(mode) == TlsInfo.Channel ? "TlsHandshakeFailed" : "AuthenticationFailed";
            LogEntry logged = await server.Logs.WaitForAsync(e => e.EventId.Name == failure);
            if (failure == "TlsHandshakeFailed")
            {
                Assert.Contains(send ? "ClientCertificateValidation rejected the client certificate 'CN=MegaPipe test client'" : "certificate", logged.Message, StringComparison.Ordinal);
            }
        }
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_Sni_SelectorChoosesBetweenTwoCertificates(HttpsMode mode)
    {
        var contexts = new System.Collections.Concurrent.ConcurrentBag<string>();
        await using TestServer server = await StartHttpsServerAsync(mode, https => https.ServerCertificateSelector = (connection, name) =>
        {
            contexts.Add(connection?.ConnectionId ?? "(none)");
            return name == "beta.test" ? TestCertificates.Beta : TestCertificates.Alpha;
        });
        foreach ((string host, X509Certificate2 expected) in new[] { ("alpha.test", TestCertificates.Alpha), ("beta.test", TestCertificates.Beta) })
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions(targetHost: host));
            Assert.Equal(expected.Thumbprint, connection.Tls!.RemoteCertificate?.GetCertHashString());
            TlsInfo info = await GetTlsInfoAsync(connection);
            Assert.Equal(ExpectedTerminator(mode), info.Terminator);
            Assert.Equal(host, info.HostName);
        }
        // The selector is given the connection, as Kestrel's is.
        Assert.DoesNotContain("(none)", contexts);
        using ClientProcess openssl = await TlsClients.OpenSslOnceAsync(server.EndPoint, "-servername", "beta.test");
        Assert.Contains("CN = beta.test", openssl.Output, StringComparison.Ordinal);
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps, "1.3")]
    [InlineData(HttpsMode.UseMegaPipeHttps, "1.3")]
    [InlineData(HttpsMode.UseHttps, "1.2")]
    [InlineData(HttpsMode.UseMegaPipeHttps, "1.2")]
    public async Task Https_Resumption_ObservedByTheClient(HttpsMode mode, string version)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using ClientProcess python = await TlsClients.PythonAsync(server.EndPoint, "resume", version);
        Assert.True(python.ExitCode == 0, python.ToString());
        string[] lines = python.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string wire = version == "1.3" ? "TLSv1.3" : "TLSv1.2";
        Assert.Equal($"reused False {wire}", lines[0]);
        Assert.Equal($"reused True {wire}", lines[1]);
        server.AssertNoErrorsLogged();
    }

    // The engine's own settings beyond HttpsConnectionAdapterOptions: with session tickets off nothing resumes.
    [Fact]
    public async Task UseMegaPipeHttps_EngineSettings_SessionTicketsOff()
    {
        await using TestServer server = await TestServer.StartAsync(Transport, app => CommonEndpoints.Map(app), kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
            listen.UseMegaPipeHttps(new HttpsConnectionAdapterOptions { ServerCertificate = TestCertificates.Rsa }, tls => tls.SessionTickets = false)), output: Output);
        using ClientProcess python = await TlsClients.PythonAsync(server.EndPoint, "resume", "1.3");
        Assert.True(python.ExitCode == 0, python.ToString());
        string[] lines = python.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("reused False TLSv1.3", lines[0]);
        // On the channels the engine issued no ticket; Kestrel's SslStream (the fallback elsewhere) still resumes.
        Assert.Equal(ExpectedTerminator(HttpsMode.UseMegaPipeHttps) == TlsInfo.Channel ? "reused False TLSv1.3" : "reused True TLSv1.3", lines[1]);
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_GracefulClose_SendsCloseNotifyBeforeTheFin(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using ClientProcess python = await TlsClients.PythonAsync(server.EndPoint, "close");
        Assert.True(python.ExitCode == 0, python.ToString());
        // On the channels: close_notify, then FIN. Kestrel's SslStream ends without close_notify (a "ragged" end,
        // which clients accept for HTTP/1.1 with a Content-Length).
        Assert.Equal(ExpectedTerminator(mode) == TlsInfo.Channel ? "clean HTTP/1.1 200 OK" : "ragged HTTP/1.1 200 OK", python.Output.Trim());
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_ClientResetsMidHandshakeAndMidBody_OthersUnaffected(HttpsMode mode)
    {
        TaskCompletionSource bodyStarted = NewSignal();
        TaskCompletionSource<Exception?> readOutcome = NewSignal<Exception?>();
        await using TestServer server = await StartHttpsServerAsync(mode, configureApp: app => app.MapPost("/upload", async (HttpContext context) =>
        {
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
            }
        }));
        // A keep-alive connection that must not notice anything.
        using RawHttpConnection bystander = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions());
        Assert.Equal(ExpectedTerminator(mode), (await GetTlsInfoAsync(bystander)).Terminator);

        // Half a ClientHello, then a reset.
        using (RawHttpConnection raw = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await raw.SendAsync(TlsClientHello.Bytes.AsMemory(0, TlsClientHello.Bytes.Length / 2));
            raw.Reset();
        }
        // A whole ClientHello and the server's flight, then a reset before the client's Finished.
        using (RawHttpConnection raw = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await raw.SendAsync(TlsClientHello.Bytes);
            byte[] flight = new byte[16 * 1024];
            Assert.True(await raw.Socket.ReceiveAsync(flight) > 0);
            raw.Reset();
        }
        // A POST whose body stops after 256 KB of 4 MB, then a reset: the application's read fails, it does not see
        // a complete body.
        using (RawHttpConnection upload = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions()))
        {
            await upload.SendAsync($"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {4 * 1024 * 1024}\r\n\r\n");
            await upload.SendAsync(TestData.Payload(256 * 1024));
            await bodyStarted.Task.WaitAsync(TestTimeouts.Default);
            upload.Reset();
        }
        Exception? error = await readOutcome.Task.WaitAsync(TestTimeouts.Default);
        Assert.True(error is IOException or ConnectionResetException or OperationCanceledException or Microsoft.AspNetCore.Http.BadHttpRequestException, error?.ToString() ?? "the body read ended as if the body were complete");
        Assert.Equal(CommonEndpoints.Hello, (await bystander.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        await AssertHttpsServesAsync(server, mode, "RequestBodyDrainBodyReaderInvalidState");
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_SilentClient_IsDroppedAtTheHandshakeTimeout(HttpsMode mode)
    {
        int kestrelConnections = 0;
        await using TestServer server = await StartHttpsServerAsync(mode, https => https.HandshakeTimeout = TimeSpan.FromSeconds(1), beforeHttps: listen => listen.Use(next => connection =>
        {
            Interlocked.Increment(ref kestrelConnections);
            return next(connection);
        }));
        using RawHttpConnection silent = await RawHttpConnection.ConnectAsync(server.EndPoint);
        var elapsed = Stopwatch.StartNew();
        (bool _, int received) = await silent.WaitForCloseAsync();
        elapsed.Stop();
        Assert.Equal(0, received);
        Assert.True(elapsed.Elapsed >= TimeSpan.FromSeconds(0.9), $"closed after {elapsed.Elapsed}, before the 1 s timeout");
        string timedOut = ExpectedTerminator(mode) == TlsInfo.Channel ? "TlsHandshakeTimedOut" : "AuthenticationTimedOut";
        await server.Logs.WaitForAsync(e => e.EventId.Name == timedOut);
        // On the channels a connection reaches Kestrel only with its handshake done: the silent one never did.
        Assert.Equal(ExpectedTerminator(mode) == TlsInfo.Channel ? 0 : 1, Volatile.Read(ref kestrelConnections));
        await AssertHttpsServesAsync(server, mode);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_GarbageInsteadOfClientHello_ClosesThatConnectionOnly(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using (RawHttpConnection raw = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await raw.SendAsync("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
            (bool _, int received) = await raw.WaitForCloseAsync();
            Assert.True(received < 64, $"the server answered plaintext with {received} bytes (at most a TLS alert is expected)");
        }
        using (RawHttpConnection raw = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            byte[] garbage = new byte[4096];
            new Random(7).NextBytes(garbage);
            garbage[0] = 0x16; // a handshake record header, then noise
            garbage[1] = 0x03;
            garbage[2] = 0x01;
            await raw.SendAsync(garbage);
            await raw.WaitForCloseAsync();
        }
        if (ExpectedTerminator(mode) == TlsInfo.Channel)
        {
            LogEntry failed = await server.Logs.WaitForAsync(e => e.EventId.Name == "TlsHandshakeFailed");
            Assert.Contains("TLS handshake failed", failed.Message, StringComparison.Ordinal);
        }
        else
        {
            await server.Logs.WaitForAsync(e => e.EventId.Name == "AuthenticationFailed");
        }
        await AssertHttpsServesAsync(server, mode);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_GarbageAndTruncatedRecordsAfterTheHandshake_AbortThatConnectionOnly(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using RawHttpConnection bystander = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions());
        Assert.Equal(ExpectedTerminator(mode), (await GetTlsInfoAsync(bystander)).Terminator);

        // An application-data record of noise (its MAC cannot verify), under a working session.
        using (RawHttpConnection victim = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions()))
        {
            Assert.Equal(200, (await victim.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
            byte[] record = new byte[5 + 256];
            new Random(11).NextBytes(record);
            record[0] = 23; // application_data
            record[1] = 3;
            record[2] = 3;
            record[3] = 1; // length 256
            record[4] = 0;
            await victim.Socket.SendAsync(record);
            Exception? seen = await Record.ExceptionAsync(() => victim.WaitForCloseAsync());
            if (ExpectedTerminator(mode) == TlsInfo.Channel)
            {
                // The channel answered with the alert before closing.
                Assert.True(seen?.ToString().Contains("bad record mac", StringComparison.Ordinal) == true, seen?.ToString() ?? "closed without an alert");
            }
        }
        // Half a record, then the FIN: a truncated record, not a clean end.
        using (RawHttpConnection victim = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions()))
        {
            Assert.Equal(200, (await victim.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
            await victim.Socket.SendAsync(new byte[] { 23, 3, 3, 0, 64, 1, 2, 3, 4, 5 });
            victim.Socket.Shutdown(SocketShutdown.Send);
            await Record.ExceptionAsync(() => victim.WaitForCloseAsync());
        }
        if (ExpectedTerminator(mode) == TlsInfo.Channel)
        {
            LogEntry[] failures = (await WaitForCountAsync(server, "TlsRecordFailed", 2)).ToArray();
            Assert.Contains(failures, e => e.Message.Contains("TLS record processing failed", StringComparison.Ordinal));
            Assert.Contains(failures, e => e.Message.Contains("truncated record", StringComparison.Ordinal));
        }
        Assert.Equal(CommonEndpoints.Hello, (await bystander.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        await AssertHttpsServesAsync(server, mode);
    }

    private static async Task<IEnumerable<LogEntry>> WaitForCountAsync(TestServer server, string eventName, int count)
    {
        await Poll.UntilAsync(() => server.Logs.Entries.Count(e => e.EventId.Name == eventName) >= count,
            () => $"{count} {eventName} log entries (now {server.Logs.Entries.Count(e => e.EventId.Name == eventName)})", intervalMilliseconds: 20);
        return server.Logs.Entries.Where(e => e.EventId.Name == eventName);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps, "-tls1")]
    [InlineData(HttpsMode.UseMegaPipeHttps, "-tls1")]
    [InlineData(HttpsMode.UseHttps, "-tls1_1")]
    [InlineData(HttpsMode.UseMegaPipeHttps, "-tls1_1")]
    public async Task Https_OldProtocolOnlyClient_IsRefused(HttpsMode mode, string protocol)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        // Security level 0 on the client, so that it really offers the old protocol.
        using ClientProcess openssl = await TlsClients.OpenSslOnceAsync(server.EndPoint, protocol, "-cipher", "DEFAULT:@SECLEVEL=0");
        Assert.NotEqual(0, openssl.ExitCode);
        Assert.DoesNotContain("New, TLSv1", openssl.Output, StringComparison.Ordinal);
        if (ExpectedTerminator(mode) == TlsInfo.Channel)
        {
            LogEntry failed = await server.Logs.WaitForAsync(e => e.EventId.Name == "TlsHandshakeFailed");
            Assert.Contains("unsupported protocol", failed.Message, StringComparison.Ordinal);
        }
        await AssertHttpsServesAsync(server, mode);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_Tls12Renegotiation_IsRefused(HttpsMode mode)
    {
        await using TestServer server = await StartHttpsServerAsync(mode);
        using ClientProcess openssl = TlsClients.OpenSsl(server.EndPoint, "-tls1_2");
        await openssl.WaitForOutputAsync("---\n");
        await openssl.WriteLineAsync("R");
        await openssl.WaitForExitAsync();
        string afterRequest = openssl.Errors[Math.Max(0, openssl.Errors.IndexOf("RENEGOTIATING", StringComparison.Ordinal))..];
        Assert.True(afterRequest.StartsWith("RENEGOTIATING", StringComparison.Ordinal), openssl.ToString());
        // The channels answer with the no_renegotiation alert; Kestrel's SslStream drops the connection.
        string refusal = ExpectedTerminator(mode) == TlsInfo.Channel ? "no renegotiation" : "unexpected eof";
        Assert.True(afterRequest.Contains(refusal, StringComparison.OrdinalIgnoreCase), openssl.ToString());
        // No second handshake: the certificate was verified once.
        Assert.DoesNotContain("verify return", afterRequest, StringComparison.Ordinal);
        await AssertHttpsServesAsync(server, mode);
    }

    [Theory]
    [InlineData(HttpsMode.UseHttps)]
    [InlineData(HttpsMode.UseMegaPipeHttps)]
    public async Task Https_ThousandConcurrentHandshakes(HttpsMode mode)
    {
        // A thousand handshakes at once on a loaded 2-core machine (the other test projects run beside this one) can
        // take longer than the default 10 s handshake timeout for the last of them, on every transport: the test is
        // about concurrency, so both sides get the whole test's time.
        TimeSpan handshakeTimeout = TimeSpan.FromMinutes(3);
        await using TestServer server = await StartHttpsServerAsync(mode, https => https.HandshakeTimeout = handshakeTimeout);
        const int Count = 1000;
        string expected = ExpectedTerminator(mode);
        Task[] clients = Enumerable.Range(0, Count).Select(async i =>
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions(), handshakeTimeout);
            Assert.Equal(expected, (await GetTlsInfoAsync(connection)).Terminator);
            Assert.Equal($"{i}", (await connection.RequestAsync(RawHttpConnection.Get($"/id/{i}"))).BodyText);
        }).ToArray();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromMinutes(3));
        await AssertHttpsServesAsync(server, mode);
    }

    [Fact]
    public async Task Https_PemKeyNotMatchingItsCertificate_FailsAtStartupSayingSo()
    {
        (string certificate, _) = TestCertificates.WritePem(TestCertificates.Rsa, "server");
        (_, string otherKey) = TestCertificates.WritePem(TestCertificates.Alpha, "alpha");
        InvalidOperationException e = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServer.StartAsync(
            Transport, app => CommonEndpoints.Map(app), kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseMegaPipeHttpsFromPem(certificate, otherKey)), output: Output));
        Assert.Contains("does not match the certificate 'CN=localhost'", e.Message, StringComparison.Ordinal);
        Assert.Contains(otherKey, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Https_FromPemFiles_Serves()
    {
        (string certificate, string key) = TestCertificates.WritePem(TestCertificates.Alpha, "alpha");
        await using TestServer server = await TestServer.StartAsync(Transport, app =>
        {
            CommonEndpoints.Map(app);
            TlsEndpoints.Map(app);
        }, kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseMegaPipeHttpsFromPem(certificate, key)), output: Output);
        using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions(targetHost: "alpha.test"));
        Assert.Equal(TestCertificates.Alpha.Thumbprint, connection.Tls!.RemoteCertificate?.GetCertHashString());
        Assert.Equal(ExpectedTerminator(HttpsMode.UseMegaPipeHttps), (await GetTlsInfoAsync(connection)).Terminator);
        server.AssertNoErrorsLogged();
    }

    // UseMegaPipeHttps terminates on the channels on MegaPipe, and falls back to Kestrel's SslStream elsewhere,
    // saying so once however many connections come.
    [Fact]
    public async Task UseMegaPipeHttps_OnChannelsOrFallingBack_LogsTheFallbackOnce()
    {
        await using TestServer server = await StartHttpsServerAsync(HttpsMode.UseMegaPipeHttps);
        for (int i = 0; i < 3; i++)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(server.EndPoint, TlsClientOptions());
            Assert.Equal(ExpectedTerminator(HttpsMode.UseMegaPipeHttps), (await GetTlsInfoAsync(connection)).Terminator);
        }
        LogEntry[] fallbacks = server.Logs.Entries.Where(e => e.EventId.Name == "HttpsFallback").ToArray();
        LogEntry[] onChannels = server.Logs.Entries.Where(e => e.EventId.Name == "HttpsOnChannels").ToArray();
        if (Transport.IsMegaPipe())
        {
            Assert.Empty(fallbacks);
            Assert.Contains("ALPN h2, http/1.1", Assert.Single(onChannels).Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("UseMegaPipe was not called", Assert.Single(fallbacks).Message, StringComparison.Ordinal);
            Assert.Empty(onChannels);
        }
        server.AssertNoErrorsLogged();
    }

    // ListenLocalhost / ListenAnyIP bind clones of their ListenOptions with new EndPoint objects: found by port.
    [Theory]
    [InlineData(HttpsMode.UseHttps, false)]
    [InlineData(HttpsMode.UseMegaPipeHttps, false)]
    [InlineData(HttpsMode.UseHttps, true)]
    [InlineData(HttpsMode.UseMegaPipeHttps, true)]
    public async Task Https_ListenLocalhostAndAnyIP_BothFamilies(HttpsMode mode, bool anyIP)
    {
        int port = FreeDualStackPort();
        await using TestServer server = await TestServer.StartAsync(Transport, app =>
        {
            CommonEndpoints.Map(app);
            TlsEndpoints.Map(app);
        }, kestrel =>
        {
            if (anyIP)
            {
                kestrel.ListenAnyIP(port, listen => listen.UseHttps(mode, TestCertificates.Rsa));
            }
            else
            {
                kestrel.ListenLocalhost(port, listen => listen.UseHttps(mode, TestCertificates.Rsa));
            }
        }, output: Output);
        foreach (IPAddress address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(new IPEndPoint(address, port), TlsClientOptions());
            Assert.Equal(ExpectedTerminator(mode), (await GetTlsInfoAsync(connection)).Terminator);
        }
        server.AssertNoErrorsLogged();
    }

    // Kestrel:Endpoints from configuration, put on the channels by MegaPipe:TlsForConfiguredEndpoints; an
    // application callback for the same endpoint still runs; an endpoint with Sni keeps SslStream.
    [Fact]
    public async Task Https_ConfigurationEndpoints_WithTheSwitch()
    {
        (string certificate, string key) = TestCertificates.WritePem(TestCertificates.Rsa, "server");
        bool callbackRan = false;
        await using TestServer server = await TestServer.StartAsync(
            Transport,
            app =>
            {
                CommonEndpoints.Map(app);
                TlsEndpoints.Map(app);
            },
            kestrel => kestrel.ConfigurationLoader!.Endpoint("Secure", endpoint => callbackRan = endpoint.IsHttps),
            configureMegaPipe: options => Assert.True(options.TlsForConfiguredEndpoints, "bound from MegaPipe:TlsForConfiguredEndpoints"),
            output: Output,
            configureBuilder: builder =>
            {
                builder.WebHost.UseKestrelHttpsConfiguration();
                builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["MegaPipe:TlsForConfiguredEndpoints"] = "true",
                    ["Kestrel:Endpoints:Secure:Url"] = "https://127.0.0.1:0",
                    ["Kestrel:Endpoints:Secure:Certificate:Path"] = certificate,
                    ["Kestrel:Endpoints:Secure:Certificate:KeyPath"] = key,
                    ["Kestrel:Endpoints:WithSni:Url"] = "https://127.0.0.1:0",
                    ["Kestrel:Endpoints:WithSni:Sni:alpha.test:Certificate:Path"] = certificate,
                    ["Kestrel:Endpoints:WithSni:Sni:alpha.test:Certificate:KeyPath"] = key,
                    ["Kestrel:Endpoints:WithSni:Sni:*:Certificate:Path"] = certificate,
                    ["Kestrel:Endpoints:WithSni:Sni:*:Certificate:KeyPath"] = key,
                    ["Kestrel:Endpoints:WithSni:Certificate:Path"] = certificate,
                    ["Kestrel:Endpoints:WithSni:Certificate:KeyPath"] = key,
                });
            });
        Assert.True(callbackRan, "the application's own callback for the endpoint ran");
        Assert.Equal(2, server.Addresses.Count);
        Assert.All(server.Addresses, a => Assert.StartsWith("https://", a, StringComparison.Ordinal));
        var terminators = new List<string>();
        foreach (string address in server.Addresses)
        {
            var uri = new Uri(address);
            using RawHttpConnection connection = await RawHttpConnection.ConnectTlsAsync(new IPEndPoint(IPAddress.Loopback, uri.Port), TlsClientOptions());
            terminators.Add((await GetTlsInfoAsync(connection)).Terminator);
        }
        // The switch is an option of UseMegaPipe: on the Sockets transport both stay Kestrel's.
        terminators.Sort(StringComparer.Ordinal);
        Assert.Equal(Transport.IsMegaPipe() ? [TlsInfo.Channel, TlsInfo.SslStream] : [TlsInfo.SslStream, TlsInfo.SslStream], terminators);
        if (Transport.IsMegaPipe())
        {
            Assert.Contains(server.Logs.Entries, e => e.EventId.Name == "HttpsConfigurationEndpointSkipped" && e.Message.Contains("'WithSni'", StringComparison.Ordinal));
        }
        server.AssertNoErrorsLogged();
    }

    // A port free on both families now (ListenLocalhost and ListenAnyIP need a fixed one).
    private static int FreeDualStackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
        probe.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
