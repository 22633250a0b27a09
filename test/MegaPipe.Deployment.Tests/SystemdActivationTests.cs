using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

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
        string webApp = typeof(SystemdActivationTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "WebAppPath").Value!;
        int port = FreePort();
        var info = new ProcessStartInfo(activate)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(webApp)!, "..", "..", "..")),
        };
        foreach (string argument in new[] { "-l", $"127.0.0.1:{port}", "-E", "Logging__Console__FormatterName=simple", "-E", "Logging__Console__FormatterOptions__SingleLine=true", "-E", "DOTNET_CLI_TELEMETRY_OPTOUT=1", DotnetHost(), webApp })
        {
            info.ArgumentList.Add(argument);
        }
        info.Environment.Remove("MEGAPIPE_ENGINE");
        var output = new ConcurrentQueue<string>();
        using Process activator = Process.Start(info)!;
        activator.OutputDataReceived += (_, e) => { if (e.Data is not null) { output.Enqueue(e.Data); } };
        activator.ErrorDataReceived += (_, e) => { if (e.Data is not null) { output.Enqueue(e.Data); } };
        activator.BeginOutputReadLine();
        activator.BeginErrorReadLine();
        try
        {
            // systemd-socket-activate listens first and starts the app on the first connection,
            // which waits in the socket's backlog meanwhile, as with a .socket unit.
            string response = await RequestWhenListeningAsync(port, "/plaintext");
            Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
            Assert.EndsWith("Hello, World!", response, StringComparison.Ordinal);

            // systemd-socket-activate execs the app in place: the same process id.
            Assert.True(File.ReadAllText($"/proc/{activator.Id}/cmdline").Contains("WebApp.dll", StringComparison.Ordinal), "the activator did not exec the app");
            // The endpoint is MegaPipe's, on io_uring, unpartitioned (one inherited socket).
            string listening = Assert.Single(output, l => l.Contains("MegaPipe transport listening on", StringComparison.Ordinal));
            Assert.Contains($"127.0.0.1:{port}", listening, StringComparison.Ordinal);
            Assert.Contains("on io_uring", listening, StringComparison.Ordinal);
            Assert.Contains("an inherited socket is one accept queue", listening, StringComparison.Ordinal);
            Assert.Contains(Directory.GetFiles($"/proc/{activator.Id}/fd"), fd => new FileInfo(fd).LinkTarget == "anon_inode:[io_uring]");
            string json = await RequestWhenListeningAsync(port, "/json");
            Assert.StartsWith("HTTP/1.1 200", json, StringComparison.Ordinal);
            Assert.Contains("application/json", json, StringComparison.Ordinal);
            Assert.Contains("Hello, World!", json, StringComparison.Ordinal);
        }
        finally
        {
            if (!activator.HasExited)
            {
                activator.Kill(entireProcessTree: true);
            }
            await activator.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        Assert.DoesNotContain(output, l => l.Contains("fail:", StringComparison.Ordinal) || l.Contains("crit:", StringComparison.Ordinal));
    }

    private static async Task<string> RequestWhenListeningAsync(int port, string path)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), timeout.Token);
                var received = new MemoryStream();
                var buffer = new byte[4096];
                int read;
                while ((read = await socket.ReceiveAsync(buffer, timeout.Token)) > 0)
                {
                    received.Write(buffer, 0, read);
                }
                return Encoding.ASCII.GetString(received.ToArray());
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && !timeout.IsCancellationRequested)
            {
                // systemd-socket-activate has not bound the port yet.
                await Task.Delay(50, timeout.Token);
            }
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }
}
