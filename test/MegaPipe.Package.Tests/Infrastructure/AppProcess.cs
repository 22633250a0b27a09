namespace MegaPipe.Package.Tests.Infrastructure;

/// <summary>A built web app run as its own process (`dotnet App.dll --urls http://127.0.0.1:0`), with its console output.</summary>
public sealed class AppProcess : WebHostProcess
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private AppProcess(string workingDirectory, string assembly, IReadOnlyDictionary<string, string>? environment)
        : base(DotnetHost.StartInfo(DotnetHost.Path, workingDirectory, [assembly, "--urls", "http://127.0.0.1:0"], environment), "the app", Timeout)
    {
    }

    public static Task<AppProcess> StartAsync(string workingDirectory, string assembly, IReadOnlyDictionary<string, string>? environment = null)
        => ListeningAsync(new AppProcess(workingDirectory, assembly, environment));
}
