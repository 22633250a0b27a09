using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp started by systemd's socket activation (Debian's systemd-socket-activate, which
/// does what a .socket unit does): the listening socket systemd made is served on MegaPipe's
/// channels over io_uring, and the log says what the endpoint runs on.
/// </summary>
public sealed class SystemdActivationTests
{
    [Fact]
    public async Task SocketActivated_WebApp_ServesTheInheritedSocketOnIoUring()
    {
        string activate = "/usr/bin/systemd-socket-activate";
        Assert.True(File.Exists(activate), $"{activate} is missing: .ci/run installs Debian's systemd package");
        string webApp = BuildMetadata.Get("WebAppPath");
        int port = Loopback.FreePort();
        ProcessStartInfo info = DotnetHost.StartInfo(activate, Path.GetFullPath(Path.Combine(Path.GetDirectoryName(webApp)!, "..", "..", "..")),
            ["-l", $"127.0.0.1:{port}", "-E", "Logging__Console__FormatterName=simple", "-E", "Logging__Console__FormatterOptions__SingleLine=true", "-E", "DOTNET_CLI_TELEMETRY_OPTOUT=1", DotnetHost.Path, webApp]);
        await using (var activator = new WebHostProcess(info, "systemd-socket-activate", TestTimeouts.Default))
        {
            // systemd-socket-activate listens first and starts the app on the first connection,
            // which waits in the socket's backlog meanwhile, as with a .socket unit.
            RawHttpResponse response = await RequestWhenListeningAsync(port, "/plaintext");
            Assert.Equal(200, response.StatusCode);
            Assert.EndsWith("Hello, World!", response.BodyText, StringComparison.Ordinal);

            // systemd-socket-activate execs the app in place: the same process id.
            Assert.True(File.ReadAllText($"/proc/{activator.ProcessId}/cmdline").Contains("WebApp.dll", StringComparison.Ordinal), "the activator did not exec the app");
            // The endpoint is MegaPipe's, on io_uring, unpartitioned (one inherited socket).
            string listening = Assert.Single(activator.Output, l => l.Contains("MegaPipe transport listening on", StringComparison.Ordinal));
            Assert.Contains($"127.0.0.1:{port}", listening, StringComparison.Ordinal);
            Assert.Contains("on io_uring", listening, StringComparison.Ordinal);
            Assert.Contains("an inherited socket is one accept queue", listening, StringComparison.Ordinal);
            Assert.Contains("anon_inode:[io_uring]", activator.DescriptorTargets());
            RawHttpResponse json = await RequestWhenListeningAsync(port, "/json");
            Assert.Equal(200, json.StatusCode);
            Assert.Contains("application/json", json.Header("Content-Type"), StringComparison.Ordinal);
            Assert.Contains("Hello, World!", json.BodyText, StringComparison.Ordinal);
            Assert.DoesNotContain(activator.Output, l => l.Contains("fail:", StringComparison.Ordinal) || l.Contains("crit:", StringComparison.Ordinal));
        }
    }

    private static async Task<RawHttpResponse> RequestWhenListeningAsync(int port, string path)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // The first request waits in the backlog while the app starts.
                return await RawHttpConnection.SendOnceAsync(new IPEndPoint(IPAddress.Loopback, port), TestTimeouts.Long, path);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && watch.Elapsed < TestTimeouts.Long)
            {
                // systemd-socket-activate has not bound the port yet.
                await Task.Delay(50);
            }
        }
    }
}
