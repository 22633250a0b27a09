// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Text;

namespace MegaPipe.Tests.Shared;

// Runs a real client process (openssl, python3, curl, h2load) with its stdin under the test's control (test/Shared,
// compiled into every test project).
internal sealed class ClientProcess : IDisposable
{
    // Generous: the suites run on a loaded 2-core machine; waits end on output or exit, not on this.
    public static readonly TimeSpan Timeout = TestTimeouts.Long;

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientProcess(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach ((string key, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }
        CommandLine = fileName + " " + string.Join(" ", start.ArgumentList);
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data, _stdoutClosed);
        _process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data, _stderrClosed);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string CommandLine { get; }

    public string Output
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Errors
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public int ExitCode => _process.ExitCode;

    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Waits until stdout or stderr contains <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (!Output.Contains(text, StringComparison.Ordinal) && !Errors.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited && _stdoutClosed.Task.IsCompleted)
            {
                throw new InvalidOperationException($"'{CommandLine}' exited ({_process.ExitCode}) without printing '{text}'.\nstdout:\n{Output}\nstderr:\n{Errors}");
            }
            await Task.Delay(10, timeout.Token);
        }
    }

    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await _process.WaitForExitAsync(timeout.Token);
        await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>Runs a process to its end with stdin closed; returns it (exit code, output).</summary>
    public static async Task<ClientProcess> RunAsync(string fileName, params string[] arguments)
    {
        var process = new ClientProcess(fileName, arguments);
        try
        {
            process.CloseInput();
            await process.WaitForExitAsync();
            return process;
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    public override string ToString() => $"{CommandLine}\nstdout:\n{Output}\nstderr:\n{Errors}";

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    private static void Append(StringBuilder builder, string? line, TaskCompletionSource closed)
    {
        if (line is null)
        {
            closed.TrySetResult();
            return;
        }
        lock (builder)
        {
            builder.AppendLine(line);
        }
    }
}
