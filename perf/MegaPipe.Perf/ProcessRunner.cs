using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// Starting pinned processes, and counting a process's system calls with perf.
public static partial class ProcessRunner
{
    // The last few KiB each started process wrote to stderr, for error messages. Reading stderr
    // as it comes also keeps a chatty process from blocking on a full pipe.
    private static readonly ConcurrentDictionary<int, StringBuilder> s_stderr = new();

    // Every process started and not yet stopped, so that an interrupted run leaves no server behind.
    private static readonly ConcurrentDictionary<int, Process> s_live = new();

    // What every .NET process of an experiment runs with. Call counting at once: on one CPU the
    // runtime otherwise waits 10 x 100 ms without new tier-0 code before counting calls for tier 1,
    // and a short warm-up would measure tier-0 code. MEGAPIPE_ENGINE: the benchmarks measure
    // io_uring; a machine without it should fail loudly rather than quietly measure a fallback.
    public static readonly IReadOnlyDictionary<string, string> DotNetEnvironment = new Dictionary<string, string>
    {
        ["DOTNET_TC_CallCountingDelayMs"] = "0",
        ["MEGAPIPE_ENGINE"] = "io_uring",
    };

    public static Process Start(string file, string arguments, int cpu, bool redirectInput = false, IReadOnlyDictionary<string, string>? environment = null)
        => Start(file, arguments, cpu.ToString(CultureInfo.InvariantCulture), redirectInput, environment);

    public static Process Start(string file, string arguments, string cpus, bool redirectInput = false, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("taskset", $"-c {cpus} {file} {arguments}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
        };
        if (environment is not null)
        {
            foreach ((string key, string value) in environment)
            {
                info.Environment[key] = value;
            }
        }
        Process p = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        s_live[p.Id] = p;
        var stderr = s_stderr[p.Id] = new StringBuilder();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
                if (stderr.Length > 8192)
                {
                    stderr.Remove(0, stderr.Length - 8192);
                }
            }
        };
        p.BeginErrorReadLine();
        return p;
    }

    public static string Stderr(Process p)
    {
        if (!s_stderr.TryGetValue(p.Id, out StringBuilder? sb))
        {
            return "";
        }
        lock (sb)
        {
            return sb.ToString();
        }
    }

    public static string Run(string file, string arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using Process p = Process.Start(info)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {arguments} did not finish in {timeout}");
        }
        return stdout.Result + stderr.Result;
    }

    // Runs a load generator pinned to `cpus` under bash's `time`, so the report can say how busy
    // the load generator itself was: returns its output and its user + system CPU seconds.
    public static (string Output, double CpuSeconds, double WallSeconds) RunTimed(string cpus, string command, TimeSpan timeout)
    {
        string script = $"TIMEFORMAT='@@time %R %U %S'; time {command}";
        string output = Run("taskset", $"-c {cpus} bash -c \"{script.Replace("\"", "\\\"", StringComparison.Ordinal)}\"", timeout);
        Match m = TimeLine().Match(output);
        if (!m.Success)
        {
            return (output, double.NaN, double.NaN);
        }
        double P(int g) => double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
        return (output, P(2) + P(3), P(1));
    }

    // Starts counting the system calls of a process for the given time; null when perf is unavailable.
    public static Task<long?> CountSystemCallsAsync(int pid, double seconds) => Task.Run<long?>(() =>
    {
        try
        {
            string output = Run("perf", $"stat -x, -e raw_syscalls:sys_enter -p {pid} -- sleep {seconds.ToString(CultureInfo.InvariantCulture)}", TimeSpan.FromSeconds(seconds + 30));
            Match m = PerfCount().Match(output);
            return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    });

    public static string WaitForLine(Process p, Func<string, bool> predicate, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            Task<string?> line = p.StandardOutput.ReadLineAsync();
            if (!line.Wait(timeout - watch.Elapsed) || line.Result is null)
            {
                break;
            }
            if (predicate(line.Result))
            {
                return line.Result;
            }
        }
        bool exited = p.HasExited;
        Stop(p);
        throw new TimeoutException($"process {p.Id} {(exited ? "exited" : "did not print the expected line in time")}; stderr: {Stderr(p)}");
    }

    public static void Stop(Process p)
    {
        try
        {
            s_live.TryRemove(p.Id, out _);
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    // On Ctrl-C, SIGTERM or exit: the servers and load generators this run started.
    public static void StopAll()
    {
        foreach (Process p in s_live.Values)
        {
            Stop(p);
        }
    }

    // A port nothing listens on now, from the kernel's ephemeral range.
    public static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    [GeneratedRegex(@"^(\d+),", RegexOptions.Multiline)]
    private static partial Regex PerfCount();

    [GeneratedRegex(@"@@time ([\d.]+) ([\d.]+) ([\d.]+)")]
    private static partial Regex TimeLine();
}
