namespace MegaPipe.Deployment.Tests;

/// <summary>
/// samples/WebApp published the shipped way, native AOT, under the repository's warnings-as-errors, then run
/// as a user runs it: /plaintext, /json and a static file, on io_uring and on the epoll engine.
/// </summary>
[Collection(NativeWebAppCollection.Name)]
public sealed class NativeAotDeploymentTests(NativeWebApp native)
{
    [Fact]
    public void PublishesNatively_WithoutWarnings() => native.AssertNativeWithoutWarnings();

    [Theory]
    [InlineData("io_uring")]
    [InlineData("epoll")]
    public async Task Native_ServesPlaintextJsonAndFiles_OnTheChosenEngine(string engine)
    {
        native.AssertPublished();
        await using WebAppProcess app = await WebAppProcess.StartNativeAsync(native.Executable,
            engine == "epoll" ? new Dictionary<string, string> { ["MEGAPIPE_ENGINE"] = "epoll" } : null);

        using HttpClient client = app.CreateClient();
        string[] bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => client.GetStringAsync("/plaintext")));
        Assert.All(bodies, b => Assert.Equal("Hello, World!", b));
        using (HttpResponseMessage json = await client.GetAsync("/json"))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, json.StatusCode);
            Assert.Equal("application/json", json.Content.Headers.ContentType?.MediaType);
            Assert.Equal("""{"message":"Hello, World!"}""", await json.Content.ReadAsStringAsync());
        }
        byte[] page = await client.GetByteArrayAsync("/6k.html");
        Assert.True(page.Length >= 6 * 1024, $"{page.Length} bytes");

        // The engine, as the log states it and as the descriptor table shows it: io_uring's rings
        // are anonymous inodes in /proc/PID/fd; the epoll engine has none, and epoll instances instead.
        string line = Assert.Single(app.Output, l => l.Contains("MegaPipe engine:", StringComparison.Ordinal));
        string[] descriptors = app.DescriptorTargets();
        if (engine == "io_uring")
        {
            Assert.Contains("MegaPipe engine: io_uring", line, StringComparison.Ordinal);
            Assert.Contains("anon_inode:[io_uring]", descriptors);
        }
        else
        {
            Assert.Contains("MegaPipe engine: epoll", line, StringComparison.Ordinal);
            Assert.Contains("MEGAPIPE_ENGINE", line, StringComparison.Ordinal);
            Assert.DoesNotContain("anon_inode:[io_uring]", descriptors);
            Assert.Contains("anon_inode:[eventpoll]", descriptors);
        }

        Assert.Equal(0, await app.StopAsync());
        string[] failures = app.Output.Where(l => l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal)).ToArray();
        Assert.True(failures.Length == 0, string.Join("\n", failures));
    }
}
