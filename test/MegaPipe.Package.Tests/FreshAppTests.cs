using System.Security.Cryptography;
using System.Text.Json;
using MegaPipe.Package.Tests.Infrastructure;

namespace MegaPipe.Package.Tests;

/// <summary>
/// A new user's first try: a brand-new `dotnet new web` app, outside the repository, that adds the
/// packed MegaPipe.Transport from a local folder feed, calls UseMegaPipe(), builds, starts and
/// answers over io_uring.
/// </summary>
[Collection(PackedSolutionCollection.Name)]
public sealed class FreshAppTests(PackedSolution packed) : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("megapipe-freshapp-").FullName;

    [Fact]
    public async Task FreshWebApp_AddsThePackedTransportFromALocalFeed_BuildsWithoutWarnings_AndServesOnIoUring()
    {
        Assert.True(packed.ExitCode == 0, packed.Output);
        string version = Repository.PackageVersion;
        string app = Path.Combine(_work, "FreshApp");
        // Its own package folder: nothing from this machine's global cache (an earlier package of
        // the same version, say) can stand in for what was just packed.
        string packages = Path.Combine(_work, "packages");
        var environment = new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages };

        await DotnetCli.RunCheckedAsync(_work, environment, "new", "web", "--name", "FreshApp", "--output", app, "--no-restore");
        // The local feed for MegaPipe.*, the public registry for everything else.
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="megapipe-local" value="{packed.Folder}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="megapipe-local">
                  <package pattern="MegaPipe.*" />
                </packageSource>
                <packageSource key="nuget.org">
                  <package pattern="*" />
                </packageSource>
              </packageSourceMapping>
            </configuration>
            """);
        await DotnetCli.RunCheckedAsync(app, environment, "add", "package", "MegaPipe.Transport", "--version", version);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            var builder = WebApplication.CreateBuilder(args);
            builder.WebHost.UseMegaPipe();
            var app = builder.Build();
            app.MapGet("/", () => "Hello from a fresh app on MegaPipe!");
            app.Run();
            """);
        string build = await DotnetCli.RunCheckedAsync(app, environment, "build", "-c", "Release", "-nodeReuse:false", "-warnaserror");
        Assert.Contains("0 Warning(s)", build, StringComparison.Ordinal);

        // Restore took both packages, at the packed version, from the local feed into the app's own folder.
        using (JsonDocument assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"))))
        {
            JsonElement libraries = assets.RootElement.GetProperty("libraries");
            foreach (string id in new[] { "MegaPipe.Transport", "MegaPipe.Core" })
            {
                Assert.True(libraries.TryGetProperty($"{id}/{version}", out JsonElement library), $"{id} {version} is not in the app's assets");
                string sha512 = Convert.ToBase64String(SHA512.HashData(File.ReadAllBytes(packed.PackagePath(id))));
                Assert.Equal(sha512, library.GetProperty("sha512").GetString());
                Assert.True(File.Exists(Path.Combine(packages, id.ToLowerInvariant(), version, $"{id.ToLowerInvariant()}.{version}.nupkg")));
            }
        }

        await using AppProcess server = await AppProcess.StartAsync(app, Path.Combine(app, "bin", "Release", "net10.0", "FreshApp.dll"));
        using var client = new HttpClient { BaseAddress = server.BaseAddress, Timeout = AppProcess.Timeout };
        Assert.Equal("Hello from a fresh app on MegaPipe!", await client.GetStringAsync("/"));

        // On io_uring: the channels' rings are in the process's descriptor table, and the log says so.
        string[] descriptors = server.DescriptorTargets();
        Assert.True(descriptors.Contains("anon_inode:[io_uring]"), $"no io_uring descriptor in /proc/{server.ProcessId}/fd: {string.Join(", ", descriptors)}\n{server.OutputText}");
        Assert.Contains(server.Output, l => l.Contains("MegaPipe engine: io_uring", StringComparison.Ordinal));

        Assert.Equal(0, await server.StopAsync());
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);
}
