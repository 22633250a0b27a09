namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>What the test project's build recorded about the repository (AssemblyMetadata in the csproj).</summary>
public static class Repository
{
    public static string Root => BuildMetadata.Get("RepositoryRoot");

    public static string Solution => Path.Combine(Root, "MegaPipe.sln");

    /// <summary>The configuration the solution was built in (the README's test command builds Release).</summary>
    public static string Configuration => BuildMetadata.Get("Configuration");

    /// <summary>The version both packages carry (VersionPrefix in Directory.Build.props).</summary>
    public static string PackageVersion => BuildMetadata.Get("PackageVersion");

    public static string Url => BuildMetadata.Get("RepositoryUrl");
}
