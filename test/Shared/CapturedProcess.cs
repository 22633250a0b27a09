// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Text;

namespace MegaPipe.Tests.Shared;

/// <summary>Runs a process to its end, collecting stdout and stderr interleaved as they arrive.</summary>
public static class CapturedProcess
{
    /// <summary>
    /// Runs <paramref name="info"/> (its output redirected, as <see cref="DotnetHost.StartInfo"/>
    /// gives it) and returns its exit code and output; a run longer than <paramref name="timeout"/>
    /// is killed and reported as a <see cref="TimeoutException"/> with what it printed.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(ProcessStartInfo info, TimeSpan timeout)
    {
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{info.FileName} {string.Join(' ', info.ArgumentList)} did not finish in {timeout}:\n{Text(output)}");
        }
        // WaitForExitAsync returns once the output readers reached the end of both streams.
        return (process.ExitCode, Text(output));
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
