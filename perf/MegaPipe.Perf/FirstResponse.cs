using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Perf;

// Starts a server and times it to its first answer: from the start of the process to the end of
// the first complete 200 response to GET <path>, polling every millisecond, as a user's first
// request or a container's readiness probe sees it. Also reads its resident memory then.
public static class FirstResponse
{
    public sealed record Started(Process Server, double Milliseconds, long RssBytes);

    public static Started Start(string exe, string arguments, string cpus, int port, string path, IReadOnlyDictionary<string, string> environment)
    {
        var watch = Stopwatch.StartNew();
        Process server = ProcessRunner.Start(exe, arguments, cpus, environment: environment);
        byte[] request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        var buffer = new byte[64 * 1024];
        while (watch.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"{exe} exited with {server.ExitCode} before answering: {ProcessRunner.Stderr(server)}");
            }
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                socket.Connect(IPAddress.Loopback, port);
                socket.Send(request);
                var response = new MemoryStream();
                int n;
                while ((n = socket.Receive(buffer)) > 0)
                {
                    response.Write(buffer, 0, n);
                }
                double ms = watch.Elapsed.TotalMilliseconds;
                string head = Encoding.ASCII.GetString(response.GetBuffer(), 0, (int)Math.Min(response.Length, 16));
                if (!head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
                {
                    ProcessRunner.Stop(server);
                    throw new InvalidOperationException($"{exe} answered GET {path} with '{head}', not 200");
                }
                return new Started(server, ms, ServerProbe.RssBytes(server.Id));
            }
            catch (SocketException)
            {
                // Not listening yet (or reset while starting): try again in a millisecond.
                Thread.Sleep(1);
            }
        }
        ProcessRunner.Stop(server);
        throw new TimeoutException($"{exe} did not answer GET {path} on port {port} within 60 s");
    }
}
