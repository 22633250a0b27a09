using System.Diagnostics;
using System.Text;

namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>Runs the .NET SDK (`dotnet ...`) as a user would, collecting its output.</summary>
public static class DotnetCli
{
    /// <summary>Generous: a restore or build on a loaded 2-core machine.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    /// <summary>The dotnet host running these tests (the SDK that built them), else the one on PATH.</summary>
    public static string Host
    {
        get
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

    /// <summary>A start info for the SDK with an environment a user's shell would give it.</summary>
    public static ProcessStartInfo StartInfo(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var info = new ProcessStartInfo(Host)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // The test host runs under `dotnet test`, whose MSBuild put its own settings into the
        // environment; a user's shell has none of them.
        foreach (string name in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || k == "MEGAPIPE_ENGINE").ToArray())
        {
            info.Environment.Remove(name);
        }
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // No MSBuild worker nodes left running after the test.
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        if (environment is not null)
        {
            foreach ((string name, string value) in environment)
            {
                info.Environment[name] = value;
            }
        }
        return info;
    }

    /// <summary>Runs `dotnet arguments...` to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        ProcessStartInfo info = StartInfo(workingDirectory, environment, arguments);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync().WaitAsync(Timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', arguments)} did not finish in {Timeout}:\n{Text(output)}");
        }
        return (process.ExitCode, Text(output));
    }

    /// <summary>Runs `dotnet arguments...` and fails the test, with its output, unless it exits 0.</summary>
    public static async Task<string> RunCheckedAsync(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        (int exitCode, string output) = await RunAsync(workingDirectory, environment, arguments);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {exitCode}:\n{output}");
        return output;
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }
}
