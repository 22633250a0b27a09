// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// The dotnet host and the environment child processes get: tests run the samples, the SDK and
/// published apps as a user would, from a shell without the test run's own settings.
/// </summary>
public static class DotnetHost
{
    /// <summary>The dotnet host running these tests (the SDK that built them), else the one on PATH.</summary>
    public static string Path
    {
        get
        {
            string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            if (!string.IsNullOrEmpty(host) && File.Exists(host))
            {
                return host;
            }
            string? path = Environment.ProcessPath;
            return path is not null && System.IO.Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
        }
    }

    /// <summary>
    /// A start info for <paramref name="fileName"/> (<see cref="Path"/> for the SDK or a
    /// framework-dependent app) with its output redirected and the environment a user's shell
    /// would give it, plus <paramref name="environment"/>.
    /// </summary>
    public static ProcessStartInfo StartInfo(string fileName, string workingDirectory, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
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
        // environment; a user's shell has none of them. Nor may the run force a child's engine:
        // the child decides it (or the test says so in environment).
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
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }
        return info;
    }
}
