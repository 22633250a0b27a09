using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
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

    // --urls beside --https_url: both served, and without Kestrel's "Overriding address(es)" warning, which would
    // say the --urls were dropped.
    [Fact]
    public async Task HttpsUrlBesideUrls_ServesBoth_WithoutTheOverridingAddressesWarning()
    {
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(_cwd, "site")).FullName, "index.html"), "both");
        using (RSA key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            File.WriteAllText(Path.Combine(_cwd, "cert.pem"), certificate.ExportCertificatePem());
            File.WriteAllText(Path.Combine(_cwd, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        }
        await using ServerProcess server = ServerProcess.Start(_cwd, ServerProcess.Direct(
            "--root", "site", "--urls", "http://127.0.0.1:0", "--https_url", "https://127.0.0.1:0", "--cert", "cert.pem", "--key", "key.pem"));

        await server.WaitForListeningAsync();
        // Both "Now listening" lines come after any warning about the addresses.
        string[] listening = await WaitForLinesAsync(server, "Now listening on: ", 2);
        Uri http = new(listening.Single(l => l.Contains("http://", StringComparison.Ordinal)).Split("Now listening on: ")[1].Trim());
        Uri https = new(listening.Single(l => l.Contains("https://", StringComparison.Ordinal)).Split("Now listening on: ")[1].Trim());
        using var plain = new HttpClient { BaseAddress = http, Timeout = ServerProcess.Timeout };
        Assert.Equal("both", await plain.GetStringAsync("/"));
        using var secure = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
        { BaseAddress = https, Timeout = ServerProcess.Timeout };
        Assert.Equal("both", await secure.GetStringAsync("/"));
        Assert.DoesNotContain("Overriding address", server.OutputText, StringComparison.Ordinal);
    }

    private static async Task<string[]> WaitForLinesAsync(ServerProcess server, string text, int count)
    {
        var deadline = DateTime.UtcNow + ServerProcess.Timeout;
        while (true)
        {
            string[] lines = server.OutputText.Split('\n').Where(l => l.Contains(text, StringComparison.Ordinal)).ToArray();
            if (lines.Length >= count)
            {
                return lines;
            }
            Assert.True(DateTime.UtcNow < deadline, $"expected {count} lines with '{text}':\n{server.OutputText}");
            await Task.Delay(20);
        }
    }

    public void Dispose() => Directory.Delete(_cwd, recursive: true);
}
