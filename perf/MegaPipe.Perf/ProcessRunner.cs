using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// Starting pinned processes, and counting a process's system calls with perf.
public static partial class ProcessRunner
{
    public static Process Start(string file, string arguments, int cpu, bool redirectInput = false, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("taskset", $"-c {cpu} {file} {arguments}")
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
        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
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
        throw new TimeoutException($"process {p.Id} did not print the expected line; stderr: {p.StandardError.ReadToEnd()}");
    }

    public static void Stop(Process p)
    {
        try
        {
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

    [GeneratedRegex(@"^(\d+),", RegexOptions.Multiline)]
    private static partial Regex PerfCount();
}
