using System.Net;
using System.Text.RegularExpressions;
using MegaPipe.StaticServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MegaPipe.StaticServer.Tests;

/// <summary>autoindex, index, default_type, types, Cache-Control and the access log, set on the command line.</summary>
public sealed partial class ConfiguredServerTests(ConfiguredSiteFixture fixture) : IClassFixture<ConfiguredSiteFixture>
{
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    [Fact]
    public async Task AutoIndex_ListsFilesAndDirectories_ButNotDotfilesOrLinksOutOfTheRoot()
    {
        _site.Write("list/a file.txt", "x");
        _site.Write("list/sub/inner.txt", "x");
        _site.Write("list/.hidden", "x");
        _site.Symlink("list/escape", Path.Combine(_site.Outside, "secret.txt"));
        _site.Symlink("list/alias.txt", "a file.txt");

        using HttpResponseMessage response = await _client.GetAsync("/list/");
        string page = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.ToString());
        Assert.Contains("Index of /list/", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"a%20file.txt\">a file.txt</a>", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"sub/\">sub/</a>", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"alias.txt\">", page, StringComparison.Ordinal);
        Assert.DoesNotContain(".hidden", page, StringComparison.Ordinal);
        Assert.DoesNotContain("escape", page, StringComparison.Ordinal);
        Assert.True(page.IndexOf("sub/", StringComparison.Ordinal) < page.IndexOf("a file.txt", StringComparison.Ordinal), "directories come first");
    }

    [Fact]
    public async Task Index_TriesTheConfiguredNamesInOrder()
    {
        _site.Write("both/index.html", "index");
        _site.Write("both/home.html", "home");
        _site.Write("second/index.html", "index only");

        Assert.Equal("home", await _client.GetStringAsync("/both/"));
        Assert.Equal("index only", await _client.GetStringAsync("/second/"));
    }

    [Fact]
    public async Task DefaultType_AndTypes_AreConfigurable()
    {
        _site.Write("ctype/README", "x");
        _site.Write("ctype/data.foo", "x");
        _site.Write("ctype/page.html", "x");

        using HttpResponseMessage unknown = await _client.GetAsync("/ctype/README");
        using HttpResponseMessage custom = await _client.GetAsync("/ctype/data.foo");
        using HttpResponseMessage known = await _client.GetAsync("/ctype/page.html");

        Assert.Equal("text/plain", unknown.Content.Headers.ContentType!.ToString());
        Assert.Equal("application/x-foo", custom.Content.Headers.ContentType!.ToString());
        Assert.Equal("text/html", known.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task CacheControl_IsSentOnFullPartialAndNotModifiedResponses()
    {
        _site.Write("cc/file.txt", "0123456789");

        using HttpResponseMessage full = await _client.GetAsync("/cc/file.txt");
        var partialRequest = new HttpRequestMessage(HttpMethod.Get, "/cc/file.txt");
        partialRequest.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 1);
        using HttpResponseMessage partial = await _client.SendAsync(partialRequest);
        var conditional = new HttpRequestMessage(HttpMethod.Get, "/cc/file.txt");
        conditional.Headers.IfNoneMatch.Add(full.Headers.ETag!);
        using HttpResponseMessage notModified = await _client.SendAsync(conditional);

        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        foreach (HttpResponseMessage response in new[] { full, partial, notModified })
        {
            Assert.Equal("public, max-age=60", response.Headers.CacheControl!.ToString());
        }
    }

    [Fact]
    public async Task AccessLog_WritesNginxCombinedLines()
    {
        _site.Write("log/page.html", "12345");
        using HttpClient client = OneConnectionClient();
        var request = new HttpRequestMessage(HttpMethod.Get, "/log/page.html?q=1");
        request.Headers.Referrer = new Uri("http://referrer.example/from");
        request.Headers.UserAgent.ParseAdd("test-agent/1.0");
        (await client.SendAsync(request)).Dispose();
        (await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/log/page.html"))).Dispose();
        (await client.GetAsync("/log/missing.html")).Dispose();

        string[] lines = await ReadLogAsync(client);

        Assert.Matches(CombinedLine(), lines.Single(l => l.Contains("/log/page.html?q=1", StringComparison.Ordinal)));
        Match get = CombinedLine().Match(lines.Single(l => l.Contains("/log/page.html?q=1", StringComparison.Ordinal)));
        Assert.Equal("127.0.0.1", get.Groups["addr"].Value);
        Assert.Equal("GET /log/page.html?q=1 HTTP/1.1", get.Groups["request"].Value);
        Assert.Equal("200", get.Groups["status"].Value);
        Assert.Equal("5", get.Groups["bytes"].Value);
        Assert.Equal("http://referrer.example/from", get.Groups["referer"].Value);
        Assert.Equal("test-agent/1.0", get.Groups["agent"].Value);

        Match head = CombinedLine().Match(lines.Single(l => l.Contains("\"HEAD /log/page.html ", StringComparison.Ordinal)));
        Assert.Equal("200", head.Groups["status"].Value);
        Assert.Equal("0", head.Groups["bytes"].Value);
        Assert.Equal("-", head.Groups["referer"].Value);

        Match missing = CombinedLine().Match(lines.Single(l => l.Contains("/log/missing.html", StringComparison.Ordinal)));
        Assert.Equal("404", missing.Groups["status"].Value);
    }

    [Fact]
    public async Task AccessLog_EscapesQuotesInHeaders()
    {
        _site.Write("log2/x.txt", "x");
        using HttpClient client = OneConnectionClient();
        var request = new HttpRequestMessage(HttpMethod.Get, "/log2/x.txt");
        request.Headers.TryAddWithoutValidation("User-Agent", "evil\" agent");
        (await client.SendAsync(request)).Dispose();

        string[] lines = await ReadLogAsync(client);

        Assert.Contains(lines, l => l.EndsWith("\"evil\\x22 agent\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AccessLog_IsOffByDefault()
    {
        await using StaticServerHost server = await StaticServerHost.StartAsync(_site.Root);
        Assert.Null(server.Services.GetService<AccessLog>());
    }

    // One connection: Kestrel runs its requests one after another, so once a later request is
    // answered, the earlier ones have finished and queued their log lines.
    private HttpClient OneConnectionClient()
        => new(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = fixture.Server.BaseAddress, Timeout = TestTimeouts.Default };

    private async Task<string[]> ReadLogAsync(HttpClient sameConnection)
    {
        (await sameConnection.GetAsync("/log-barrier")).Dispose();
        await fixture.Server.Services.GetRequiredService<AccessLog>().FlushAsync().WaitAsync(TestTimeouts.Default);
        using var stream = new FileStream(fixture.AccessLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return (await reader.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [GeneratedRegex("""^(?<addr>\S+) - (?<user>\S+) \[(?<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "(?<request>[^"]*)" (?<status>\d{3}) (?<bytes>\d+) "(?<referer>[^"]*)" "(?<agent>[^"]*)"$""")]
    private static partial Regex CombinedLine();
}
