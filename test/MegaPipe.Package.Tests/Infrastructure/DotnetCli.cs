namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>Runs the .NET SDK (`dotnet ...`) as a user would, collecting its output.</summary>
public static class DotnetCli
{
    /// <summary>Generous: a restore or build on a loaded 2-core machine.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    /// <summary>Runs `dotnet arguments...` to completion and returns its exit code and output.</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
        => CapturedProcess.RunAsync(DotnetHost.StartInfo(DotnetHost.Path, workingDirectory, arguments, environment), Timeout);

    /// <summary>Runs `dotnet arguments...` and fails the test, with its output, unless it exits 0.</summary>
    public static async Task<string> RunCheckedAsync(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        (int exitCode, string output) = await RunAsync(workingDirectory, environment, arguments);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {exitCode}:\n{output}");
        return output;
    }
}
