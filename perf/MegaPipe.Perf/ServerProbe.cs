using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// What the experiments ask of a running server and of wrk's output: is it listening, its worker
// processes, its CPU time and resident memory, and wrk's figures.
public static partial class ServerProbe
{
    public static void WaitForPort(int port)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(100);
            }
        }
        throw new TimeoutException($"nothing listens on port {port}");
    }

    public static IEnumerable<int> ChildPids(int pid)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            string path = $"/proc/{pid}/task/{pid}/children";
            int[] children = File.Exists(path) ? File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray() : [];
            // taskset execs nginx in place; nginx forks its worker.
            if (children.Length > 0)
            {
                return children;
            }
            Thread.Sleep(100);
        }
        return [];
    }

    public static double CpuSeconds(int pid)
    {
        (double user, double system) = CpuTimes(pid);
        return user + system;
    }

    // User and kernel CPU seconds of a process (all its threads).
    public static (double User, double System) CpuTimes(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the comm field.
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) / 100.0, long.Parse(fields[12], CultureInfo.InvariantCulture) / 100.0);
        }
        catch (IOException)
        {
            return (0, 0);
        }
    }

    public static long RssBytes(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        return 0;
    }

    public static double ParseDouble(Match m) => m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")]
    public static partial Regex RequestsPerSecond();

    [GeneratedRegex(@"(\d+) requests in")]
    public static partial Regex TotalRequests();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    public static partial Regex SocketErrors();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    public static partial Regex Non2xx();
}
