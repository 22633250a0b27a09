using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>The command line as a user types it: --help, and a relative --root, run directly and under `dotnet run`.</summary>
public sealed class CommandLineTests : IDisposable
{
    private readonly string _cwd = Directory.CreateTempSubdirectory("megapipe-static-cwd-").FullName;

    // Every key StaticServerOptions.FromConfiguration and StaticServerApp read.
    private static readonly string[] Options =
    [
        "--root", "--urls", "--index", "--autoindex", "--default_type", "--types:", "--cache_control", "--access_log",
        "--precompressed", "--open_file_cache_max", "--max_cached_file_size", "--content_cache_size", "--read_chunk_size",
        "--watch", "--transport", "--MegaPipe:",
    ];

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public async Task Help_PrintsEveryOption_AndExitsZero_WithoutServing(string flag)
    {
        // In an empty directory: were the server to start, it would serve it.
        await using ServerProcess server = ServerProcess.Start(_cwd, ServerProcess.Direct("--urls", "http://127.0.0.1:0", flag));

        Assert.Equal(0, await server.WaitForExitAsync());
        string output = server.OutputText;
        Assert.StartsWith("StaticServer:", output, StringComparison.Ordinal);
        foreach (string option in Options)
        {
            Assert.Contains(option, output, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("Now listening", output, StringComparison.Ordinal);
        Assert.False(server.IsListening);
    }

    // Run directly or by `dotnet run` (which used to start a web project in the project folder, so
    // `--root site` named samples/StaticServer/site, which does not exist), a relative root is
    // relative to where the command was typed, and that is the content root.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RelativeRoot_IsRelativeToTheCurrentDirectory_NotTheProjectFolder(bool dotnetRun)
    {
        string body = dotnetRun ? "served from where dotnet run was typed" : "served from the current directory";
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(_cwd, "site")).FullName, "index.html"), body);
        string[] arguments = ["--root", "site", "--urls", "http://127.0.0.1:0"];
        await using ServerProcess server = ServerProcess.Start(_cwd, dotnetRun ? ServerProcess.DotnetRun(arguments) : ServerProcess.Direct(arguments));

        Uri address = await server.WaitForListeningAsync();
        using var client = new HttpClient { BaseAddress = address, Timeout = ServerProcess.Timeout };
        Assert.Equal(body, await client.GetStringAsync("/"));
        Assert.Contains($"Content root path: {_cwd}", server.OutputText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingRelativeRoot_SaysWhichDirectory_AndExitsTwo()
    {
        await using ServerProcess server = ServerProcess.Start(_cwd, ServerProcess.Direct("--root", "nowhere", "--urls", "http://127.0.0.1:0"));

        Assert.Equal(2, await server.WaitForExitAsync());
        Assert.Contains(Path.Combine(_cwd, "nowhere"), server.OutputText, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_cwd, recursive: true);
}
