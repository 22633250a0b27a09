using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// TLS handshake steps that wait in the channel's HandshakeScheduler (src/MegaPipe.Transport/Internal/HandshakeScheduler.cs)
/// behind the turn's other events. The soak over HTTPS found that a client whose Finished, part of a request and a reset
/// all arrived while its step waited looked to Kestrel like a clean end in the middle of a request (a 400-style
/// invalid_request outcome) instead of a reset.
/// </summary>
public sealed class HandshakeSchedulingTests(ITestOutputHelper output)
{
    // Python's ssl over memory BIOs: the handshake up to the client's Finished, which is held back with part of a
    // request until the test says "go"; then both in one write, and a reset.
    private const string Client = """
        import socket, ssl, struct, sys
        port = int(sys.argv[1])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["http/1.1"])
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        sock = socket.create_connection(("127.0.0.1", port))
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    sys.exit("the server closed during the handshake")
                incoming.write(data)
        tls.write(b"GET /hello HTTP/1.1\r\nHost: local")
        held = outgoing.read()
        print("ready", len(held), flush=True)
        sys.stdin.readline()
        sock.sendall(held)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        print("reset", flush=True)
        """;

    // On epoll the held Finished, the data and the reset are read in the one turn the waiting step runs after (without
    // the fix the input ended cleanly there, every time); on io_uring the reset's completion can come a turn later,
    // after the step ran, and the case checks the same outcome.
    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task FinishedPartialRequestAndReset_WhileTheHandshakeStepWaits_EndTheInputWithTheReset(ChannelEngine engine)
    {
        using var blocking = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var ended = new TaskCompletionSource<(string Received, Exception? Error)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app =>
            {
                CommonEndpoints.Map(app);
                // Inline on the channel thread: holds the one channel (and so every completion) until released.
                app.MapGet("/block", (HttpContext _) =>
                {
                    blocking.Set();
                    Assert.True(release.Wait(TestTimeouts.Default), "the test did not release the channel");
                    return "released";
                });
            },
            kestrel =>
            {
                kestrel.Listen(IPAddress.Loopback, 0);
                kestrel.Listen(IPAddress.Loopback, 0, listen =>
                {
                    listen.UseMegaPipeHttps(TestCertificates.Rsa);
                    // What Kestrel's HTTP layer would read: the decrypted bytes, and how the input ends.
                    listen.Use(next => async connection =>
                    {
                        var received = new StringBuilder();
                        try
                        {
                            while (true)
                            {
                                ReadResult result = await connection.Transport.Input.ReadAsync();
                                received.Append(Encoding.ASCII.GetString(result.Buffer.ToArray()));
                                connection.Transport.Input.AdvanceTo(result.Buffer.End);
                                if (result.IsCompleted)
                                {
                                    ended.TrySetResult((received.ToString(), null));
                                    return;
                                }
                            }
                        }
                        catch (Exception e)
                        {
                            ended.TrySetResult((received.ToString(), e));
                        }
                    });
                });
            },
            options =>
            {
                options.Engine = engine;
                options.ChannelCount = 1;
                options.UnsafeInlineScheduling = true;
                // Every handshake step waits behind the turn's other events.
                options.HandshakeTurnBudget = TimeSpan.Zero;
            },
            output);
        IPEndPoint plain = EndPointOf(server.Addresses.Single(a => a.StartsWith("http://", StringComparison.Ordinal)));
        IPEndPoint https = EndPointOf(server.Addresses.Single(a => a.StartsWith("https://", StringComparison.Ordinal)));

        string script = Path.Combine(Path.GetTempPath(), $"megapipe-held-finished-{Environment.ProcessId}.py");
        File.WriteAllText(script, Client.Replace("\r\n", "\n"));
        using var client = new ClientProcess("python3", [script, https.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await client.WaitForOutputAsync("ready");

        // The channel is held by /block while the client's Finished, its partial request and its reset arrive.
        using RawHttpConnection blocker = await RawHttpConnection.ConnectAsync(plain);
        Task<RawHttpResponse> blocked = blocker.RequestAsync(RawHttpConnection.Get("/block"));
        Assert.True(blocking.Wait(TestTimeouts.Default), "/block did not start");
        await client.WriteLineAsync("go");
        await client.WaitForOutputAsync("reset");
        release.Set();
        Assert.Equal("released", (await blocked.WaitAsync(TestTimeouts.Default)).BodyText);

        (string received, Exception? error) = await ended.Task.WaitAsync(TestTimeouts.Default);
        // A pipe whose writer completed with an error throws it at the next read, bytes still buffered or not; a
        // clean end would hand over the partial request and then IsCompleted.
        Assert.True(error is ConnectionResetException, $"the input ended with {error?.ToString() ?? "no error (a clean end)"} after '{received}', not the client's reset");
        Assert.Equal(0, await client.WaitForExitAsync());
        File.Delete(script);
    }

    private static IPEndPoint EndPointOf(string address)
    {
        var uri = new Uri(address);
        return new IPEndPoint(IPAddress.Parse(uri.Host), uri.Port);
    }
}
