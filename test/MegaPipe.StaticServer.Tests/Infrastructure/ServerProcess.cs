using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>
/// StaticServer started the way a user starts it, as its own process: `dotnet StaticServer.dll ...`
/// (the build beside these tests) or `dotnet run --project samples/StaticServer -- ...`, in a
/// chosen working directory. Collects its console output.
/// </summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    /// <summary>Generous: `dotnet run` evaluates the project before it starts the app.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServerProcess(Process process) => _process = process;

    public string OutputText => string.Join("\n", _output);

    public Uri? BaseAddress => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : null;

    /// <summary>The StaticServer.dll built beside these tests (the test project references the sample).</summary>
    public static string[] Direct(params string[] arguments) => [Path.Combine(AppContext.BaseDirectory, "StaticServer.dll"), .. arguments];

    /// <summary>`dotnet run` of samples/StaticServer, without building it again (the tests' build built it).</summary>
    public static string[] DotnetRun(params string[] arguments)
        => ["run", "--no-build", "-c", Metadata("Configuration"), "--project", Path.Combine(Metadata("RepositoryRoot"), "samples", "StaticServer"), "--", .. arguments];

    public static ServerProcess Start(string workingDirectory, string[] dotnetArguments) => StartCommand(workingDirectory, DotnetHost(), dotnetArguments);

    /// <summary>A natively published StaticServer (<see cref="NativeStaticServer"/>).</summary>
    public static ServerProcess StartNative(string workingDirectory, string executable, params string[] arguments) => StartCommand(workingDirectory, executable, arguments);

    private static ServerProcess StartCommand(string workingDirectory, string file, string[] dotnetArguments)
    {
        var info = new ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in dotnetArguments)
        {
            info.ArgumentList.Add(argument);
        }
        // A user's shell: none of the test run's MSBuild settings, no engine forced.
        foreach (string name in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || k == "MEGAPIPE_ENGINE").ToArray())
        {
            info.Environment.Remove(name);
        }
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        var server = new ServerProcess(new Process { StartInfo = info });
        server._process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        return server;
    }

    /// <summary>Waits until the server listens; fails with its output if it exits first.</summary>
    public async Task<Uri> WaitForListeningAsync()
    {
        Task first = await Task.WhenAny(_listening.Task, _process.WaitForExitAsync()).WaitAsync(Timeout);
        if (first != _listening.Task)
        {
            await _process.WaitForExitAsync().WaitAsync(Timeout);
            throw new InvalidOperationException($"StaticServer exited with {_process.ExitCode} before listening:\n{OutputText}");
        }
        return await _listening.Task;
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(Timeout);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(Timeout);
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

    internal static string Metadata(string key)
        => typeof(ServerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    internal static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningRegex();
}
