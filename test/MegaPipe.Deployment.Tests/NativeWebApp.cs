using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp published as a user publishes it (`dotnet publish -c Release`: the sample sets
/// PublishAot, so that is a native executable), once for the tests that use it, into a temporary
/// folder with its own build output, so the repository's bin and obj are not touched. Native AOT
/// needs clang and zlib (.ci/run installs them).
/// </summary>
public sealed class NativeWebApp : IAsyncLifetime
{
    /// <summary>Generous: ILCompiler on a loaded 2-core machine, after a restore of its packages.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("megapipe-aot-").FullName;

    public string Executable => Path.Combine(_folder, "publish", "WebApp");

    /// <summary>What `dotnet publish` printed.</summary>
    public string PublishOutput { get; private set; } = "";

    public int PublishExitCode { get; private set; } = -1;

    public async Task InitializeAsync()
    {
        string project = Path.Combine(Metadata("RepositoryRoot"), "samples", "WebApp", "WebApp.csproj");
        var info = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        foreach (string argument in new[]
        {
            "publish", project, "-c", Metadata("Configuration"),
            $"-p:ArtifactsPath={Path.Combine(_folder, "artifacts")}", "-o", Path.Combine(_folder, "publish"), "-nodeReuse:false",
        })
        {
            info.ArgumentList.Add(argument);
        }
        // The test run's own MSBuild settings are not a user's.
        foreach (string name in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToArray())
        {
            info.Environment.Remove(name);
        }
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";

        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync().WaitAsync(PublishTimeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        lock (output)
        {
            PublishOutput = output.ToString();
        }
        PublishExitCode = process.HasExited ? process.ExitCode : -1;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        return Task.CompletedTask;
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

    private static string Metadata(string key)
        => typeof(NativeWebApp).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

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
}

[CollectionDefinition(Name)]
public sealed class NativeWebAppCollection : ICollectionFixture<NativeWebApp>
{
    public const string Name = "native WebApp";
}
