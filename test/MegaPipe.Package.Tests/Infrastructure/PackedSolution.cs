namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>
/// `dotnet pack MegaPipe.sln` into a fresh folder, once for all the tests of the collection. The
/// solution was just built by the test command, so the pack does not build it again.
/// </summary>
public sealed class PackedSolution : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("megapipe-pack-").FullName;

    public string Output { get; private set; } = "";

    public int ExitCode { get; private set; }

    public string PackagePath(string id, string extension = "nupkg") => Path.Combine(Folder, $"{id}.{Repository.PackageVersion}.{extension}");

    public async Task InitializeAsync()
    {
        (ExitCode, Output) = await DotnetCli.RunAsync(Repository.Root, null,
            "pack", Repository.Solution, "-c", Repository.Configuration, "--no-build", "-o", Folder, "-nodeReuse:false");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class PackedSolutionCollection : ICollectionFixture<PackedSolution>
{
    public const string Name = "packed solution";
}
