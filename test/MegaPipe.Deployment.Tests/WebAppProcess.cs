using System.ComponentModel;
using System.Diagnostics;
using System.Net;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp started as its own process, optionally through the <c>restrict</c> launcher
/// (restrict.c, compiled with gcc on first use) that installs a seccomp filter and resource limits
/// before exec, as a container runtime does. Collects the app's console output.
/// </summary>
public sealed class WebAppProcess : WebHostProcess
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly Lazy<string> s_launcher = new(CompileLauncher);

    private WebAppProcess(ProcessStartInfo info) : base(info, "the web app", Timeout)
    {
    }

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
        string webApp = BuildMetadata.Get("WebAppPath");
        Assert.True(File.Exists(webApp), $"{webApp} is missing: the test project builds samples/WebApp first");
        string projectDirectory = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(webApp)!, "..", "..", ".."));
        return ([DotnetHost.Path, webApp], projectDirectory);
    }

    private static Task<WebAppProcess> StartAsync(bool denyIoUring, int nofile, string urls, string[] appArguments,
        string[] command, string workingDirectory, IReadOnlyDictionary<string, string>? environment)
    {
        var arguments = new List<string>();
        if (denyIoUring)
        {
            arguments.Add("--deny-io-uring");
        }
        if (nofile > 0)
        {
            arguments.Add("--nofile");
            arguments.Add(nofile.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        arguments.Add("--");
        arguments.AddRange(command);
        arguments.Add("--urls");
        arguments.Add(urls);
        arguments.AddRange(appArguments);
        // One line per log entry, so a test can find an entry by a line.
        var childEnvironment = new Dictionary<string, string>
        {
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            childEnvironment[name] = value;
        }
        ProcessStartInfo info = DotnetHost.StartInfo(s_launcher.Value, workingDirectory, arguments, childEnvironment);

        return ListeningAsync(new WebAppProcess(info));
    }

    public HttpClient CreateClient() => new(new SocketsHttpHandler { ConnectTimeout = Timeout }) { BaseAddress = BaseAddress, Timeout = Timeout };

    public IPEndPoint EndPoint => new(IPAddress.Parse(BaseAddress.Host), BaseAddress.Port);

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
}
