// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// A web app run as its own process (a sample, an app made with the SDK, a natively published
/// executable): its console output line by line, the address from ASP.NET Core's "Now listening
/// on" line, waits for other lines, its descriptors and status in /proc, and a stop by SIGTERM as a
/// service manager stops it. The test projects say how to start theirs.
/// </summary>
public partial class WebHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _name;
    private readonly TimeSpan _timeout;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> _waiters = new();

    /// <summary>Starts <paramref name="info"/> (output redirected); <paramref name="timeout"/> bounds every wait on it.</summary>
    public WebHostProcess(ProcessStartInfo info, string name, TimeSpan timeout)
    {
        _name = name;
        _timeout = timeout;
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Whether the app has printed its listening address.</summary>
    public bool IsListening => _listening.Task.IsCompletedSuccessfully;

    /// <summary>The app's address, once it listens (<see cref="WaitForListeningAsync"/>).</summary>
    public Uri BaseAddress => IsListening ? _listening.Task.Result : throw new InvalidOperationException($"{_name} is not listening yet.");

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public IReadOnlyCollection<string> Output => _output.ToArray();

    public string OutputText => string.Join("\n", _output);

    /// <summary>
    /// Waits until the app listens; a <see cref="StartupFailedException"/> with its output if it
    /// exits first, a <see cref="TimeoutException"/> with its output if it does neither in time.
    /// </summary>
    public async Task<Uri> WaitForListeningAsync()
    {
        Task first;
        try
        {
            first = await Task.WhenAny(_listening.Task, _process.WaitForExitAsync()).WaitAsync(_timeout);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{_name} did not listen within {_timeout}:\n{OutputText}", e);
        }
        if (first != _listening.Task)
        {
            // Let the output readers finish before reporting it.
            await _process.WaitForExitAsync().WaitAsync(_timeout);
            throw new StartupFailedException(_name, _process.ExitCode, OutputText);
        }
        return await _listening.Task;
    }

    /// <summary>Waits until <paramref name="process"/> listens and returns it; disposes of it (killing it) when it does not.</summary>
    public static async Task<T> ListeningAsync<T>(T process) where T : WebHostProcess
    {
        try
        {
            await process.WaitForListeningAsync();
            return process;
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Completes with the first output line (already written or still to come) that matches.</summary>
    public Task<string> WaitForOutputAsync(Func<string, bool> match)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            _waiters.Add((match, seen));
            foreach (string line in _output)
            {
                if (match(line))
                {
                    seen.TrySetResult(line);
                }
            }
        }
        return seen.Task.WaitAsync(_timeout);
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(_timeout);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as a service manager or container runtime stops the app; returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        Assert.Equal(0, kill(_process.Id, SIGTERM));
        return await WaitForExitAsync();
    }

    /// <summary>Where each descriptor of the process points now (readlink of /proc/PID/fd/N).</summary>
    public string[] DescriptorTargets()
    {
        var targets = new List<string>();
        foreach (string fd in Directory.GetFiles($"/proc/{_process.Id}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } target)
                {
                    targets.Add(target);
                }
            }
            catch (IOException)
            {
                // Closed between the listing and the readlink.
            }
        }
        return targets.ToArray();
    }

    /// <summary>Descriptors the process has open now.</summary>
    public int OpenDescriptors() => Directory.GetFiles($"/proc/{_process.Id}/fd").Length;

    /// <summary>A field of /proc/PID/status, such as "Seccomp".</summary>
    public string Status(string field)
        => File.ReadLines($"/proc/{_process.Id}/status").Select(l => l.Split(':', 2)).Single(p => p[0] == field)[1].Trim();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(_timeout);
        }
        _process.Dispose();
        GC.SuppressFinalize(this);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        _output.Enqueue(line);
        Match listening = ListeningRegex().Match(line);
        if (listening.Success)
        {
            _listening.TrySetResult(new Uri(listening.Groups[1].Value));
        }
        lock (_waiters)
        {
            foreach ((Func<string, bool> match, TaskCompletionSource<string> seen) in _waiters)
            {
                if (match(line))
                {
                    seen.TrySetResult(line);
                }
            }
        }
    }

    private const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningRegex();
}
