using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>
/// samples/StaticServer published the shipped way (native AOT) under the repository's
/// warnings-as-errors, then run as a user runs it: --help, a relative --root, options parsed from
/// the command line (the nginx-style ones and --MegaPipe:...), files served on io_uring.
/// </summary>
public sealed class NativeAotTests(NativeStaticServer native) : IClassFixture<NativeStaticServer>, IDisposable
{
    private readonly string _cwd = Directory.CreateTempSubdirectory("megapipe-static-native-cwd-").FullName;

    [Fact]
    public void PublishesNatively_WithoutWarnings() => native.AssertNativeWithoutWarnings();

    [Fact]
    public async Task Native_Help_ExitsZero()
    {
        native.AssertPublished();
        await using ServerProcess server = ServerProcess.StartNative(_cwd, native.Executable, "--help");
        Assert.Equal(0, await server.WaitForExitAsync());
        Assert.Contains("--root DIR", server.OutputText, StringComparison.Ordinal);
        Assert.False(server.IsListening);
    }

    [Fact]
    public async Task Native_ServesARelativeRoot_WithCommandLineOptions_OnIoUring()
    {
        native.AssertPublished();
        string site = Directory.CreateDirectory(Path.Combine(_cwd, "site")).FullName;
        File.WriteAllText(Path.Combine(site, "home.html"), "native home");
        byte[] big = TempSite.RandomBytes(300 * 1024, 7);
        File.WriteAllBytes(Path.Combine(site, "big.bin"), big);
        File.WriteAllText(Path.Combine(site, "notes.md"), "# notes");
        await using ServerProcess server = ServerProcess.StartNative(_cwd, native.Executable,
            "--root", "site", "--urls", "http://127.0.0.1:0", "--index", "home.html", "--types:md", "text/markdown",
            "--cache_control", "public, max-age=5", "--MegaPipe:ChannelCount", "1");

        Uri address = await server.WaitForListeningAsync();
        using var client = new HttpClient { BaseAddress = address, Timeout = ServerProcess.Timeout };
        using (HttpResponseMessage home = await client.GetAsync("/"))
        {
            Assert.Equal("native home", await home.Content.ReadAsStringAsync());
            Assert.Equal("public, max-age=5", home.Headers.CacheControl?.ToString());
        }
        using (HttpResponseMessage notes = await client.GetAsync("/notes.md"))
        {
            Assert.Equal("text/markdown", notes.Content.Headers.ContentType?.MediaType);
        }
        // Larger than the content cache's per-file limit: streamed through channel reads.
        Assert.Equal(big, await client.GetByteArrayAsync("/big.bin"));

        string engine = Assert.Single(server.OutputText.Split('\n'), l => l.Contains("MegaPipe engine:", StringComparison.Ordinal));
        Assert.Contains("MegaPipe engine: io_uring", engine, StringComparison.Ordinal);
        // --MegaPipe:ChannelCount bound through the generated configuration binder.
        Assert.Contains(": 1 channel on io_uring,", server.OutputText, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_cwd, recursive: true);
}
