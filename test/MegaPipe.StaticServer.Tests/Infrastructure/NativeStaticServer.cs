using System.Diagnostics;
using System.Text;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>
/// samples/StaticServer published as a user publishes it (`dotnet publish -c Release`: the sample
/// sets PublishAot, so a native executable), once for the tests that use it, into a temporary
/// folder with its own build output. Native AOT needs clang and zlib (.ci/run installs them).
/// </summary>
public sealed class NativeStaticServer : IAsyncLifetime
{
    /// <summary>Generous: ILCompiler on a loaded 2-core machine, after a restore of its packages.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("megapipe-static-aot-").FullName;

    public string Executable => Path.Combine(_folder, "publish", "StaticServer");

    public string PublishOutput { get; private set; } = "";

    public int PublishExitCode { get; private set; } = -1;

    public async Task InitializeAsync()
    {
        var info = new ProcessStartInfo(ServerProcess.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        string project = Path.Combine(ServerProcess.Metadata("RepositoryRoot"), "samples", "StaticServer", "StaticServer.csproj");
        foreach (string argument in new[]
        {
            "publish", project, "-c", ServerProcess.Metadata("Configuration"),
            $"-p:ArtifactsPath={Path.Combine(_folder, "artifacts")}", "-o", Path.Combine(_folder, "publish"), "-nodeReuse:false",
        })
        {
            info.ArgumentList.Add(argument);
        }
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
}
