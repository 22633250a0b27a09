using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// The sample web app run as a process under the restrictions of real deployments: a seccomp
/// profile that denies io_uring (Docker's default), and a small RLIMIT_NOFILE under a flood.
/// </summary>
public sealed class RestrictedDeploymentTests
{
    private static readonly byte[] PlaintextRequest = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n"u8.ToArray();

    [Fact]
    public async Task UnderSeccompDenyingIoUring_FallsBackToEpoll_SaysWhyOnce_AndServes()
    {
        await using WebAppProcess app = await WebAppProcess.StartAsync(denyIoUring: true);
        // The filter is really on the server process (mode 2: filter), installed before exec.
        Assert.Equal("2", app.Status("Seccomp"));

        string engine = Assert.Single(app.Output, l => l.Contains("MegaPipe engine:", StringComparison.Ordinal));
        Assert.Contains("epoll fallback", engine, StringComparison.Ordinal);
        Assert.Contains("io_uring_setup", engine, StringComparison.Ordinal);
        Assert.Contains("EPERM", engine, StringComparison.Ordinal);
        Assert.Contains("seccomp", engine, StringComparison.Ordinal);

        using HttpClient client = app.CreateClient();
        string[] bodies = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => client.GetStringAsync("/plaintext")));
        Assert.All(bodies, b => Assert.Equal("Hello, World!", b));
        Assert.Contains("Hello, World!", await client.GetStringAsync("/json"), StringComparison.Ordinal);
        // A static file larger than one receive/send: the whole body arrives.
        byte[] page = await client.GetByteArrayAsync("/6k.html");
        Assert.True(page.Length >= 6 * 1024, $"{page.Length} bytes");

        Assert.Equal(0, await app.StopAsync());
        AssertNoFailures(app);
    }

    [Fact]
    public async Task Unrestricted_RunsOnIoUring_AndSaysSoOnce()
    {
        await using WebAppProcess app = await WebAppProcess.StartAsync();
        Assert.Equal("0", app.Status("Seccomp"));
        string engine = Assert.Single(app.Output, l => l.Contains("MegaPipe engine:", StringComparison.Ordinal));
        Assert.Contains("MegaPipe engine: io_uring", engine, StringComparison.Ordinal);
        using HttpClient client = app.CreateClient();
        Assert.Equal("Hello, World!", await client.GetStringAsync("/plaintext"));
        Assert.Equal(0, await app.StopAsync());
        AssertNoFailures(app);
    }

    // A flood of connections beyond what the process may hold: RLIMIT_NOFILE (regular
    // descriptors) or the registered-file table, which is sized by it (lightweight sockets). New
    // connections wait in the backlog (or are refused), existing ones keep being served, the
    // server does not crash, and it recovers when the flood ends.
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public async Task ConnectionFlood_BeyondDescriptorLimit_ExistingServed_NoCrash_Recovers(bool lightweightSockets, bool denyIoUring)
    {
        const int Limit = 512;
        const int Flood = 700;
        await using WebAppProcess app = await WebAppProcess.StartAsync(denyIoUring, Limit,
            "--MegaPipe:ChannelCount", "1", "--MegaPipe:LightweightSockets", lightweightSockets ? "true" : "false");
        using HttpClient probe = app.CreateClient();
        Assert.Equal("Hello, World!", await probe.GetStringAsync("/plaintext"));
        probe.Dispose();
        int baseline = app.OpenDescriptors();

        var existing = new List<Socket>();
        var flood = new List<Socket>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                Socket socket = await ConnectAsync(app.EndPoint);
                existing.Add(socket);
                await AssertPlaintextAsync(socket, app);
            }

            // The flood: connect and send a request on each; the kernel completes handshakes into
            // the listen backlog whether or not the server can take them.
            for (int i = 0; i < Flood; i++)
            {
                Socket socket;
                try
                {
                    socket = await ConnectAsync(app.EndPoint);
                }
                catch (SocketException e)
                {
                    throw new InvalidOperationException($"flood connection {i}: {e.SocketErrorCode}; server exited: {app.HasExited}\n{app.OutputText}", e);
                }
                flood.Add(socket);
                await socket.SendAsync(PlaintextRequest);
            }

            // The server ran out: it said so (EMFILE for descriptors, ENFILE for a full table).
            string failure = await app.WaitForOutputAsync(l => l.Contains("Accepting on", StringComparison.Ordinal));
            Assert.Contains(lightweightSockets ? "ENFILE" : "EMFILE", failure, StringComparison.Ordinal);
            Assert.False(app.HasExited, app.OutputText);
            Assert.True(app.OpenDescriptors() <= Limit);

            // Connections it already had are unaffected.
            foreach (Socket socket in existing)
            {
                await AssertPlaintextAsync(socket, app);
            }

            // Flood connections it did take were answered; each got a whole response or none.
            int answered = 0;
            foreach (Socket socket in flood)
            {
                if (socket.Available > 0)
                {
                    answered++;
                }
            }
            Assert.True(answered > 0, "none of the flood was served");
        }
        finally
        {
            foreach (Socket socket in flood)
            {
                socket.Dispose();
            }
        }

        // Recovery: the flood is gone, so new connections are served again and the descriptors
        // the flood held come back.
        using (Socket fresh = await ConnectAsync(app.EndPoint))
        {
            try
            {
                await AssertPlaintextAsync(fresh, app);
            }
            catch (SocketException e)
            {
                throw new InvalidOperationException($"fresh connection after the flood: {e.SocketErrorCode}; server exited: {app.HasExited}\n{app.OutputText}", e);
            }
        }
        foreach (Socket socket in existing)
        {
            await AssertPlaintextAsync(socket, app);
            socket.Dispose();
        }
        await Poll.UntilAsync(() => app.OpenDescriptors() <= baseline + 4, () => $"descriptors {app.OpenDescriptors()}, baseline {baseline}", WebAppProcess.Timeout, intervalMilliseconds: 50);

        Assert.Equal(0, await app.StopAsync());
        AssertNoFailures(app);
    }

    // Another process already listening on the port: MegaPipe's partitions use SO_REUSEPORT, which
    // could silently share (or steal) a port another SO_REUSEPORT server holds; the app must refuse
    // to start with Kestrel's own address-in-use error instead, as on the Sockets transport, and
    // the first server keeps every connection.
    [Theory]
    [InlineData("megapipe", "megapipe")]
    [InlineData("sockets", "megapipe")]
    [InlineData("megapipe", "sockets")]
    public async Task PortHeldByAnotherProcess_StartFailsWithAddressInUse_FirstServerKeepsThePort(string first, string second)
    {
        await using WebAppProcess holder = await WebAppProcess.StartAsync(false, 0, "--transport", first);
        (int exitCode, string output) = await WebAppProcess.RunExpectingStartupFailureAsync(holder.BaseAddress.ToString().TrimEnd('/'), "--transport", second);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("address already in use", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("AddressInUseException", output, StringComparison.Ordinal);

        // Every new connection still reaches the first server.
        for (int i = 0; i < 32; i++)
        {
            using Socket socket = await ConnectAsync(holder.EndPoint);
            await AssertPlaintextAsync(socket, holder);
        }
        Assert.Equal(0, await holder.StopAsync());
    }

    private static Task<Socket> ConnectAsync(IPEndPoint endPoint) => Loopback.ConnectAsync(endPoint, WebAppProcess.Timeout);

    // One keep-alive request and its whole response on an open connection.
    private static async Task AssertPlaintextAsync(Socket socket, WebAppProcess app)
    {
        try
        {
            await AssertPlaintextAsync(socket);
        }
        catch (Exception e) when (e is SocketException or Xunit.Sdk.XunitException)
        {
            throw new InvalidOperationException($"{e.Message}; server exited: {app.HasExited}\n{app.OutputText}", e);
        }
    }

    private static async Task AssertPlaintextAsync(Socket socket)
    {
        await socket.SendAsync(PlaintextRequest);
        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(WebAppProcess.Timeout);
        while (!received.ToString().EndsWith("Hello, World!", StringComparison.Ordinal))
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(n > 0, $"closed after: {received}");
            received.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        Assert.StartsWith("HTTP/1.1 200 OK", received.ToString(), StringComparison.Ordinal);
    }

    // Nothing beyond warnings: no error, no critical, no unhandled exception.
    private static void AssertNoFailures(WebAppProcess app)
    {
        string[] failures = app.Output.Where(l => l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal)
            || l.Contains("Unhandled exception", StringComparison.Ordinal)).ToArray();
        Assert.True(failures.Length == 0, string.Join("\n", failures));
    }
}
