// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// A sample published as a user publishes it (`dotnet publish -c Release`: the samples set
/// PublishAot, so a native executable), once for the tests that use it (an xunit collection
/// fixture), into a temporary folder with its own build output, so the repository's bin and obj
/// are not touched. Native AOT needs clang and zlib (.ci/run installs them).
/// </summary>
public abstract class NativeSample : IAsyncLifetime
{
    /// <summary>Generous: ILCompiler on a loaded 2-core machine, after a restore of its packages.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(10);

    private readonly string _sample;
    private readonly string _folder;

    /// <summary>Publishes samples/<paramref name="sample"/>/<paramref name="sample"/>.csproj.</summary>
    protected NativeSample(string sample)
    {
        _sample = sample;
        _folder = Directory.CreateTempSubdirectory($"megapipe-aot-{sample.ToLowerInvariant()}-").FullName;
    }

    public string Executable => Path.Combine(_folder, "publish", _sample);

    /// <summary>What `dotnet publish` printed.</summary>
    public string PublishOutput { get; private set; } = "";

    /// <summary>Its exit code; -1 when it did not finish in time.</summary>
    public int PublishExitCode { get; private set; } = -1;

    public async Task InitializeAsync()
    {
        string project = Path.Combine(BuildMetadata.Get("RepositoryRoot"), "samples", _sample, _sample + ".csproj");
        ProcessStartInfo info = DotnetHost.StartInfo(DotnetHost.Path, _folder,
        [
            "publish", project, "-c", BuildMetadata.Get("Configuration"),
            $"-p:ArtifactsPath={Path.Combine(_folder, "artifacts")}", "-o", Path.Combine(_folder, "publish"), "-nodeReuse:false",
        ]);
        try
        {
            (PublishExitCode, PublishOutput) = await CapturedProcess.RunAsync(info, PublishTimeout);
        }
        catch (TimeoutException e)
        {
            // The tests that need the executable fail with this output.
            PublishOutput = e.Message;
            PublishExitCode = -1;
        }
    }

    /// <summary>Fails, with what `dotnet publish` printed, unless it produced the executable.</summary>
    public void AssertPublished()
        => Assert.True(PublishExitCode == 0 && File.Exists(Executable), $"dotnet publish (native AOT) exited with {PublishExitCode}:\n{PublishOutput}");

    /// <summary>
    /// The publish printed no warning (the repository's warnings-as-errors hold for the trimmed,
    /// AOT-compiled app too), and its result is a native ELF executable, not a managed app: no
    /// .dll beside it to JIT.
    /// </summary>
    public void AssertNativeWithoutWarnings()
    {
        AssertPublished();
        string[] warnings = PublishOutput.Split('\n').Where(l => l.Contains("warning", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.True(warnings.Length == 0, string.Join("\n", warnings));
        Assert.False(File.Exists(Path.ChangeExtension(Executable, ".dll")));
        byte[] header = new byte[4];
        using (FileStream file = File.OpenRead(Executable))
        {
            file.ReadExactly(header);
        }
        Assert.Equal("\u007fELF"u8.ToArray(), header);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        return Task.CompletedTask;
    }
}
