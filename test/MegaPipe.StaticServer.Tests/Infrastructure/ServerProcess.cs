namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>
/// StaticServer started the way a user starts it, as its own process: `dotnet StaticServer.dll ...`
/// (the build beside these tests) or `dotnet run --project samples/StaticServer -- ...`, in a
/// chosen working directory. Collects its console output.
/// </summary>
public sealed class ServerProcess : WebHostProcess
{
    /// <summary>Generous: `dotnet run` evaluates the project before it starts the app.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private ServerProcess(string workingDirectory, string file, string[] arguments)
        : base(DotnetHost.StartInfo(file, workingDirectory, arguments), "StaticServer", Timeout)
    {
    }

    /// <summary>The StaticServer.dll built beside these tests (the test project references the sample).</summary>
    public static string[] Direct(params string[] arguments) => [Path.Combine(AppContext.BaseDirectory, "StaticServer.dll"), .. arguments];

    /// <summary>`dotnet run` of samples/StaticServer, without building it again (the tests' build built it).</summary>
    public static string[] DotnetRun(params string[] arguments)
        => ["run", "--no-build", "-c", BuildMetadata.Get("Configuration"), "--project", Path.Combine(BuildMetadata.Get("RepositoryRoot"), "samples", "StaticServer"), "--", .. arguments];

    /// <summary>`dotnet <paramref name="dotnetArguments"/>` in <paramref name="workingDirectory"/>, from a user's shell.</summary>
    public static ServerProcess Start(string workingDirectory, string[] dotnetArguments) => new(workingDirectory, DotnetHost.Path, dotnetArguments);

    /// <summary>A natively published StaticServer (<see cref="NativeStaticServer"/>).</summary>
    public static ServerProcess StartNative(string workingDirectory, string executable, params string[] arguments) => new(workingDirectory, executable, arguments);
}
