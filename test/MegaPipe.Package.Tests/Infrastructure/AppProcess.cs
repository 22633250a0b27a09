using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>A built web app run as its own process (`dotnet App.dll --urls http://127.0.0.1:0`), with its console output.</summary>
public sealed partial class AppProcess : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private AppProcess(Process process) => _process = process;

    public Uri BaseAddress { get; private set; } = null!;

    public int ProcessId => _process.Id;

    public string OutputText => string.Join("\n", _output);

    public IReadOnlyCollection<string> Output => _output.ToArray();

    public static async Task<AppProcess> StartAsync(string workingDirectory, string assembly, IReadOnlyDictionary<string, string>? environment = null)
    {
        var app = new AppProcess(new Process { StartInfo = DotnetCli.StartInfo(workingDirectory, environment, assembly, "--urls", "http://127.0.0.1:0") });
        app._process.OutputDataReceived += (_, e) => app.OnLine(e.Data);
        app._process.ErrorDataReceived += (_, e) => app.OnLine(e.Data);
        app._process.Start();
        app._process.BeginOutputReadLine();
        app._process.BeginErrorReadLine();
        try
        {
            Task first = await Task.WhenAny(app._listening.Task, app._process.WaitForExitAsync()).WaitAsync(Timeout);
            if (first != app._listening.Task)
            {
                await app._process.WaitForExitAsync().WaitAsync(Timeout);
                throw new InvalidOperationException($"the app exited with {app._process.ExitCode} before listening:\n{app.OutputText}");
            }
            app.BaseAddress = await app._listening.Task;
            return app;
        }
        catch (TimeoutException e)
        {
            await app.DisposeAsync();
            throw new TimeoutException($"the app did not listen within {Timeout}:\n{app.OutputText}", e);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Where each of the process's descriptors points (readlink of /proc/PID/fd/N).</summary>
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

    /// <summary>SIGTERM, as a service manager stops the app; returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        Assert.Equal(0, kill(_process.Id, SIGTERM));
        await _process.WaitForExitAsync().WaitAsync(Timeout);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(Timeout);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        _process.Dispose();
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
    }

    private const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningRegex();
}
