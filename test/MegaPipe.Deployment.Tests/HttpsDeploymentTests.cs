using System.Net;
using System.Net.Security;
using System.Runtime.InteropServices;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp with --https_url as a deployed process: TLS on the channels on io_uring and, under Docker's seccomp
/// profile, on epoll; and, where OpenSSL 3 cannot be loaded (MEGAPIPE_OPENSSL_DIR naming a directory without it),
/// Kestrel's SslStream serves the same endpoint, which the app says once.
/// </summary>
public sealed class HttpsDeploymentTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Https_OnTheChannels_OnEitherEngine(bool denyIoUring)
    {
        await using WebAppProcess app = await WebAppProcess.StartAsync(denyIoUring, new Dictionary<string, string>(), "--https_url", "https://127.0.0.1:0");
        Uri https = await HttpsAddressAsync(app);
        string terminated = await app.WaitForOutputAsync(l => l.Contains("is terminated on the MegaPipe channels", StringComparison.Ordinal));
        Assert.Contains("ALPN h2, http/1.1", terminated, StringComparison.Ordinal);
        Assert.Contains(denyIoUring ? "epoll" : "io_uring", Assert.Single(app.Output, l => l.Contains("MegaPipe engine:", StringComparison.Ordinal)), StringComparison.Ordinal);
        await AssertServesAsync(https);
        Assert.DoesNotContain(app.Output, l => l.Contains("SslStream", StringComparison.Ordinal));
        // The app was given --urls too (the plain endpoint it listens on beside the HTTPS one): no warning that they were dropped.
        Assert.DoesNotContain(app.Output, l => l.Contains("Overriding address", StringComparison.Ordinal));
        Assert.Equal(0, await app.StopAsync());
    }

    [Fact]
    public async Task Https_WithoutOpenSsl3_FallsBackToSslStream_SayingSoOnce()
    {
        string empty = Directory.CreateTempSubdirectory("megapipe-no-openssl-").FullName;
        try
        {
            await using WebAppProcess app = await WebAppProcess.StartAsync(false, new Dictionary<string, string> { ["MEGAPIPE_OPENSSL_DIR"] = empty }, "--https_url", "https://127.0.0.1:0");
            Uri https = await HttpsAddressAsync(app);
            await AssertServesAsync(https);
            await AssertServesAsync(https);
            string unavailable = Assert.Single(app.Output, l => l.Contains("MegaPipe TLS is unavailable", StringComparison.Ordinal));
            Assert.Contains(Path.Combine(empty, "libcrypto.so.3") + " could not be loaded (MEGAPIPE_OPENSSL_DIR=" + empty + ")", unavailable, StringComparison.Ordinal);
            Assert.Single(app.Output, l => l.Contains("is served by Kestrel's SslStream, not on the MegaPipe channels", StringComparison.Ordinal));
            Assert.DoesNotContain(app.Output, l => l.Contains("is terminated on the MegaPipe channels", StringComparison.Ordinal));
            Assert.Equal(0, await app.StopAsync());
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task Https_OpenSslFromMegaPipeOpenSslDir_IsUsed()
    {
        // The system's own copy, named explicitly: loaded from there, TLS on the channels.
        string directory = Path.GetDirectoryName(NativeLibraryPath("libssl.so.3"))!;
        await using WebAppProcess app = await WebAppProcess.StartAsync(false, new Dictionary<string, string> { ["MEGAPIPE_OPENSSL_DIR"] = directory }, "--https_url", "https://127.0.0.1:0");
        Uri https = await HttpsAddressAsync(app);
        await app.WaitForOutputAsync(l => l.Contains("is terminated on the MegaPipe channels", StringComparison.Ordinal));
        await AssertServesAsync(https);
        Assert.Equal(0, await app.StopAsync());
    }

    private static async Task<Uri> HttpsAddressAsync(WebAppProcess app)
    {
        string line = await app.WaitForOutputAsync(l => l.Contains("Now listening on: https://", StringComparison.Ordinal));
        return new Uri(line[(line.IndexOf("https://", StringComparison.Ordinal))..].Trim());
    }

    private static async Task AssertServesAsync(Uri https)
    {
        foreach (Version version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var client = new HttpClient(new SocketsHttpHandler
            {
                // The app's self-signed certificate for localhost.
                SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=localhost" },
            })
            { BaseAddress = https, DefaultRequestVersion = version, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = WebAppProcess.Timeout };
            using HttpResponseMessage response = await client.GetAsync("/plaintext");
            Assert.Equal(version, response.Version);
            Assert.Equal("Hello, World!", await response.Content.ReadAsStringAsync());
            Assert.True((await client.GetByteArrayAsync("/6k.html")).Length >= 6 * 1024);
        }
    }

    // Where the dynamic linker finds a library (the copy the runtime loads), from this process's mappings.
    private static string NativeLibraryPath(string name)
    {
        NativeLibrary.Load(name); // mapped for good (the process's own copy; nothing to free)
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0 && line.EndsWith("/" + name, StringComparison.Ordinal))
            {
                return line[slash..];
            }
        }
        throw new InvalidOperationException($"{name} is loaded but not in /proc/self/maps");
    }
}
