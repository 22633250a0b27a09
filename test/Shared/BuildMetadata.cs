// Licensed under the MIT License. See LICENSE in the repository root.

using System.Reflection;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// What the test project's build wrote into its assembly (AssemblyMetadata items in the .csproj:
/// RepositoryRoot, Configuration, the path of a sample it built first).
/// </summary>
public static class BuildMetadata
{
    /// <summary>The value of the metadata item <paramref name="key"/>; fails when the project does not set it.</summary>
    public static string Get(string key)
    {
        AssemblyMetadataAttribute? item = typeof(BuildMetadata).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().SingleOrDefault(a => a.Key == key);
        return item?.Value ?? throw new InvalidOperationException($"The test project sets no AssemblyMetadata '{key}'.");
    }
}
