using System.IO.Compression;
using System.Reflection.Metadata;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MegaPipe.Package.Tests.Infrastructure;

namespace MegaPipe.Package.Tests;

/// <summary>What `dotnet pack MegaPipe.sln` produces: exactly the two libraries, with their metadata, readme and symbols.</summary>
[Collection(PackedSolutionCollection.Name)]
public sealed partial class PackageContentTests(PackedSolution packed)
{
    private static readonly string[] Packages = ["MegaPipe.Core", "MegaPipe.Transport"];

    // The portable PDB's SourceLink record (Portable PDB format, "Source Link" custom debug information).
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");

    [Fact]
    public void SolutionPack_ProducesExactlyTheTwoLibraries_WithSymbols_AndNoWarnings()
    {
        Assert.True(packed.ExitCode == 0, packed.Output);
        string[] files = Directory.GetFiles(packed.Folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        string v = Repository.PackageVersion;
        Assert.Equal([$"MegaPipe.Core.{v}.nupkg", $"MegaPipe.Core.{v}.snupkg", $"MegaPipe.Transport.{v}.nupkg", $"MegaPipe.Transport.{v}.snupkg"], files);
        string[] warnings = packed.Output.Split('\n').Where(l => l.Contains("warning", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.True(warnings.Length == 0, string.Join("\n", warnings));
    }

    [Theory]
    [InlineData("MegaPipe.Core")]
    [InlineData("MegaPipe.Transport")]
    public void Package_CarriesLicenseReadmeTagsAndRepository(string id)
    {
        using ZipArchive package = ZipFile.OpenRead(packed.PackagePath(id));
        XElement metadata = Nuspec(package, id);

        Assert.Equal(id, Value(metadata, "id"));
        Assert.Equal(Repository.PackageVersion, Value(metadata, "version"));
        Assert.Equal("MegaPipe.NET contributors", Value(metadata, "authors"));
        XElement license = Element(metadata, "license");
        Assert.Equal("expression", license.Attribute("type")?.Value);
        Assert.Equal("MIT", license.Value);
        Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "description")));
        string[] tags = Value(metadata, "tags").Split(' ');
        Assert.Contains("io_uring", tags);
        Assert.Contains("kestrel", tags);
        Assert.Equal(Repository.Url, Value(metadata, "projectUrl"));

        XElement repository = Element(metadata, "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.Equal(Repository.Url, repository.Attribute("url")?.Value);
        Assert.Matches(CommitRegex(), repository.Attribute("commit")?.Value ?? "");

        // The readme the nuspec names is in the package, and is the package readme.
        string readmeName = Value(metadata, "readme");
        ZipArchiveEntry? readme = package.GetEntry(readmeName);
        Assert.NotNull(readme);
        using (var reader = new StreamReader(readme.Open()))
        {
            string text = reader.ReadToEnd();
            Assert.Contains("UseMegaPipe()", text, StringComparison.Ordinal);
            Assert.Contains("MegaPipe.Transport", text, StringComparison.Ordinal);
        }

        // The library and its XML docs; nothing from other projects.
        string[] lib = package.Entries.Select(e => e.FullName).Where(n => n.StartsWith("lib/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([$"lib/net10.0/{id}.dll", $"lib/net10.0/{id}.xml"], lib);
    }

    [Fact]
    public void Transport_DependsOnExactlyItsOwnVersionOfCore()
    {
        using ZipArchive package = ZipFile.OpenRead(packed.PackagePath("MegaPipe.Transport"));
        XElement metadata = Nuspec(package, "MegaPipe.Transport");
        XElement[] dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency").ToArray();
        XElement core = Assert.Single(dependencies);
        Assert.Equal("MegaPipe.Core", core.Attribute("id")?.Value);
        Assert.Equal($"[{Repository.PackageVersion}]", core.Attribute("version")?.Value);
        XElement framework = Assert.Single(metadata.Descendants(), e => e.Name.LocalName == "frameworkReference");
        Assert.Equal("Microsoft.AspNetCore.App", framework.Attribute("name")?.Value);
    }

    [Theory]
    [InlineData("MegaPipe.Core", "src/MegaPipe.Core/MegaPipeChannel.cs")]
    [InlineData("MegaPipe.Transport", "src/MegaPipe.Transport/WebHostBuilderMegaPipeExtensions.cs")]
    public void SymbolPackage_HasThePortablePdb_WithSourceLinkToTheRepositoryAtThePackedCommit(string id, string sourceFile)
    {
        using ZipArchive symbols = ZipFile.OpenRead(packed.PackagePath(id, "snupkg"));
        ZipArchiveEntry pdb = Assert.Single(symbols.Entries, e => e.FullName == $"lib/net10.0/{id}.pdb");
        using ZipArchive package = ZipFile.OpenRead(packed.PackagePath(id));
        string commit = Element(Nuspec(package, id), "repository").Attribute("commit")!.Value;

        using var copy = new MemoryStream();
        using (Stream stream = pdb.Open())
        {
            stream.CopyTo(copy);
        }
        copy.Position = 0;
        using MetadataReaderProvider provider = MetadataReaderProvider.FromPortablePdbStream(copy);
        MetadataReader reader = provider.GetMetadataReader();

        string? sourceLink = null;
        foreach (CustomDebugInformationHandle handle in reader.GetCustomDebugInformation(EntityHandle.ModuleDefinition))
        {
            CustomDebugInformation info = reader.GetCustomDebugInformation(handle);
            if (reader.GetGuid(info.Kind) == SourceLinkKind)
            {
                sourceLink = System.Text.Encoding.UTF8.GetString(reader.GetBlobBytes(info.Value));
            }
        }
        Assert.True(sourceLink is not null, $"{id}.pdb has no SourceLink");

        // One mapping: the repository root to the raw files of the packed commit.
        using JsonDocument json = JsonDocument.Parse(sourceLink);
        JsonProperty mapping = Assert.Single(json.RootElement.GetProperty("documents").EnumerateObject());
        Assert.EndsWith("/*", mapping.Name, StringComparison.Ordinal);
        Uri repository = new(Repository.Url);
        Assert.Equal($"https://raw.githubusercontent.com{repository.AbsolutePath.TrimEnd('/')}/{commit}/*", mapping.Value.GetString());

        // The library's own source files are under the mapped root, so a debugger can fetch them.
        string root = mapping.Name[..^1];
        string[] documents = reader.Documents.Select(d => reader.GetString(reader.GetDocument(d).Name)).ToArray();
        string document = Assert.Single(documents, d => d.EndsWith(sourceFile, StringComparison.Ordinal));
        Assert.StartsWith(root, document, StringComparison.Ordinal);
        Assert.Equal(sourceFile, document[root.Length..]);
    }

    private static XElement Nuspec(ZipArchive package, string id)
    {
        ZipArchiveEntry entry = Assert.Single(package.Entries, e => e.FullName == $"{id}.nuspec");
        using Stream stream = entry.Open();
        return Element(XDocument.Load(stream).Root!, "metadata");
    }

    private static XElement Element(XElement parent, string name)
    {
        XElement? element = parent.Elements().FirstOrDefault(e => e.Name.LocalName == name);
        Assert.True(element is not null, $"<{name}> is missing from {parent.Name.LocalName}");
        return element;
    }

    private static string Value(XElement parent, string name) => Element(parent, name).Value;

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitRegex();
}
