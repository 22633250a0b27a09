using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp started as its own process, optionally through the <c>restrict</c> launcher
/// (restrict.c, compiled with gcc on first use) that installs a seccomp filter and resource limits
/// before exec, as a container runtime does. Collects the app's console output.
/// </summary>
public sealed partial class WebAppProcess : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly Lazy<string> s_launcher = new(CompileLauncher);
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> _waiters = new();

    private WebAppProcess(Process process) => _process = process;

    public Uri BaseAddress { get; private set; } = null!;

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public IReadOnlyCollection<string> Output => _output.ToArray();

    public static Task<WebAppProcess> StartAsync(bool denyIoUring = false, int nofile = 0, params string[] appArguments)
        => StartAsync(denyIoUring, nofile, "http://127.0.0.1:0", appArguments);

    /// <summary>Starts the app (JIT) with <paramref name="environment"/> added, e.g. MEGAPIPE_OPENSSL_DIR.</summary>
    public static Task<WebAppProcess> StartAsync(bool denyIoUring, IReadOnlyDictionary<string, string> environment, params string[] appArguments)
    {
        (string[] command, string directory) = JitCommand();
        return StartAsync(denyIoUring, 0, "http://127.0.0.1:0", appArguments, command, directory, environment);
    }

    /// <summary>Runs the app on <paramref name="urls"/> expecting it to fail at start-up; returns its exit code and output.</summary>
    public static Task<(int ExitCode, string Output)> RunExpectingStartupFailureAsync(string urls, params string[] appArguments)
        => RunExpectingStartupFailureAsync(urls, null, appArguments);

    /// <summary>The same, with <paramref name="environment"/> added to the app's environment.</summary>
    public static async Task<(int ExitCode, string Output)> RunExpectingStartupFailureAsync(string urls, IReadOnlyDictionary<string, string>? environment, params string[] appArguments)
    {
        try
        {
            await using WebAppProcess app = await StartAsync(false, 0, urls, appArguments, environment);
            Assert.Fail($"the app started on {urls}:\n{app.OutputText}");
            throw new InvalidOperationException();
        }
        catch (StartupFailedException e)
        {
            return (e.ExitCode, e.Output);
        }
    }

    public sealed class StartupFailedException(int exitCode, string output) : Exception($"the web app exited with {exitCode} before listening:\n{output}")
    {
        public int ExitCode { get; } = exitCode;
        public string Output { get; } = output;
    }

    /// <summary>
    /// Runs a natively compiled WebApp (<see cref="NativeWebApp"/>) from its publish folder, its
    /// content root, with <paramref name="environment"/> added (e.g. MEGAPIPE_ENGINE).
    /// </summary>
    public static Task<WebAppProcess> StartNativeAsync(string executable, IReadOnlyDictionary<string, string>? environment = null, params string[] appArguments)
        => StartAsync(false, 0, "http://127.0.0.1:0", appArguments, [executable], Path.GetDirectoryName(executable)!, environment);

    private static Task<WebAppProcess> StartAsync(bool denyIoUring, int nofile, string urls, string[] appArguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        (string[] command, string directory) = JitCommand();
        return StartAsync(denyIoUring, nofile, urls, appArguments, command, directory, environment);
    }

    // dotnet WebApp.dll, in the project directory (as `dotnet run` would use: the content root with wwwroot).
    private static (string[] Command, string Directory) JitCommand()
    {
        string webApp = typeof(WebAppProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "WebAppPath").Value!;
        Assert.True(File.Exists(webApp), $"{webApp} is missing: the test project builds samples/WebApp first");
        string projectDirectory = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(webApp)!, "..", "..", ".."));
        return ([DotnetHost(), webApp], projectDirectory);
    }

    private static async Task<WebAppProcess> StartAsync(bool denyIoUring, int nofile, string urls, string[] appArguments,
        string[] command, string workingDirectory, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(s_launcher.Value)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        if (denyIoUring)
        {
            info.ArgumentList.Add("--deny-io-uring");
        }
        if (nofile > 0)
        {
            info.ArgumentList.Add("--nofile");
            info.ArgumentList.Add(nofile.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        info.ArgumentList.Add("--");
        foreach (string part in command)
        {
            info.ArgumentList.Add(part);
        }
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add(urls);
        foreach (string argument in appArguments)
        {
            info.ArgumentList.Add(argument);
        }
        // The child decides its own engine: nothing inherited from the test run may force it.
        info.Environment.Remove("MEGAPIPE_ENGINE");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        info.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var app = new WebAppProcess(Process.Start(info)!);
        app._process.OutputDataReceived += (_, e) => app.OnLine(e.Data);
        app._process.ErrorDataReceived += (_, e) => app.OnLine(e.Data);
        app._process.BeginOutputReadLine();
        app._process.BeginErrorReadLine();
        try
        {
            Task exited = app._process.WaitForExitAsync();
            Task first = await Task.WhenAny(app._listening.Task, exited).WaitAsync(Timeout);
            if (first != app._listening.Task)
            {
                // Let the output readers finish before reporting it.
                await app._process.WaitForExitAsync().WaitAsync(Timeout);
                throw new StartupFailedException(app._process.ExitCode, app.OutputText);
            }
            app.BaseAddress = await app._listening.Task;
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    public string OutputText => string.Join("\n", _output);

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
        return seen.Task.WaitAsync(Timeout);
    }

    public HttpClient CreateClient() => new(new SocketsHttpHandler { ConnectTimeout = Timeout }) { BaseAddress = BaseAddress, Timeout = Timeout };

    public IPEndPoint EndPoint => new(IPAddress.Parse(BaseAddress.Host), BaseAddress.Port);

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

    /// <summary>SIGTERM, as a service manager or container runtime stops the app; returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        Assert.Equal(0, kill(_process.Id, SIGTERM));
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

    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    private static string CompileLauncher()
    {
        string dir = Directory.CreateTempSubdirectory("megapipe-restrict-").FullName;
        string source = Path.Combine(dir, "restrict.c");
        string exe = Path.Combine(dir, "restrict");
        using (Stream resource = typeof(WebAppProcess).Assembly.GetManifestResourceStream("MegaPipe.Deployment.Tests.restrict.c")!)
        using (FileStream file = File.Create(source))
        {
            resource.CopyTo(file);
        }
        var info = new ProcessStartInfo("gcc") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in new[] { "-std=gnu11", "-O2", "-Wall", "-Werror", "-o", exe, source })
        {
            info.ArgumentList.Add(argument);
        }
        Process gcc;
        try
        {
            gcc = Process.Start(info)!;
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run gcc ({e.Message}): these tests compile a small launcher (.ci/run installs gcc)", e);
        }
        using (gcc)
        {
            string errors = gcc.StandardError.ReadToEnd() + gcc.StandardOutput.ReadToEnd();
            gcc.WaitForExit();
            if (gcc.ExitCode != 0)
            {
                throw new InvalidOperationException($"gcc failed to build restrict.c:\n{errors}");
            }
        }
        return exe;
    }

    private const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningRegex();
}
