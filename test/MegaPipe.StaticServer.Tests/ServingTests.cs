using System.Net;
using System.Text;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

public sealed class ServingTests(SiteFixture fixture) : IClassFixture<SiteFixture>
{
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    [Fact]
    public async Task Get_ReturnsTheFileWithTypeLengthAndValidators()
    {
        DateTime modified = new(2024, 3, 1, 12, 30, 45, DateTimeKind.Utc);
        _site.Write("get/page.html", "<h1>hello</h1>", modified);

        using HttpResponseMessage response = await _client.GetAsync("/get/page.html");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("<h1>hello</h1>", await response.Content.ReadAsStringAsync());
        Assert.Equal("text/html", response.Content.Headers.ContentType!.ToString());
        Assert.Equal(14, response.Content.Headers.ContentLength);
        Assert.Equal(new DateTimeOffset(modified), response.Content.Headers.LastModified);
        Assert.Equal($"\"{new DateTimeOffset(modified).ToUnixTimeSeconds():x}-e\"", response.Headers.ETag!.ToString());
        Assert.Equal(["bytes"], response.Headers.AcceptRanges);
        Assert.Null(response.Headers.CacheControl); // off by default
        Assert.Empty(response.Headers.Vary);        // no precompressed sibling
    }

    [Fact]
    public async Task Head_ReturnsTheHeadersOfGetWithoutABody()
    {
        _site.Write("head/data.json", "{\"a\":1}");
        using HttpResponseMessage get = await _client.GetAsync("/head/data.json");

        RawHttpResponse head = await RawHttpConnection.SendOnceAsync(fixture.EndPoint, "/head/data.json", "HEAD");

        Assert.Equal(200, head.StatusCode);
        Assert.Empty(head.Body);
        Assert.Equal("7", head.Header("Content-Length"));
        Assert.Equal("application/json", head.Header("Content-Type"));
        Assert.Equal(get.Headers.ETag!.ToString(), head.Header("ETag"));
    }

    [Theory]
    [InlineData("a.html", "text/html")]
    [InlineData("a.htm", "text/html")]
    [InlineData("a.css", "text/css")]
    [InlineData("a.js", "application/javascript")]
    [InlineData("a.mjs", "application/javascript")]
    [InlineData("a.json", "application/json")]
    [InlineData("a.txt", "text/plain")]
    [InlineData("a.xml", "text/xml")]
    [InlineData("a.png", "image/png")]
    [InlineData("a.JPG", "image/jpeg")]
    [InlineData("a.gif", "image/gif")]
    [InlineData("a.svg", "image/svg+xml")]
    [InlineData("a.ico", "image/x-icon")]
    [InlineData("a.webp", "image/webp")]
    [InlineData("a.woff2", "font/woff2")]
    [InlineData("a.pdf", "application/pdf")]
    [InlineData("a.zip", "application/zip")]
    [InlineData("a.wasm", "application/wasm")]
    [InlineData("a.mp4", "video/mp4")]
    [InlineData("noextension", "application/octet-stream")]
    [InlineData("a.unknownext", "application/octet-stream")]
    public async Task ContentType_FollowsTheExtension(string name, string expected)
    {
        _site.Write("types/" + name, "x");
        using HttpResponseMessage response = await _client.GetAsync("/types/" + name);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task Directory_ServesItsIndexHtml()
    {
        _site.Write("dir/index.html", "the index");

        using HttpResponseMessage response = await _client.GetAsync("/dir/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("the index", await response.Content.ReadAsStringAsync());
        Assert.Equal("text/html", response.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task Root_ServesItsIndexHtml()
    {
        _site.Write("index.html", "root index");
        Assert.Equal("root index", await _client.GetStringAsync("/"));
    }

    [Fact]
    public async Task Directory_WithoutTrailingSlash_IsRedirectedKeepingTheQuery()
    {
        _site.Write("redirect/index.html", "x");

        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(fixture.EndPoint, "/redirect?a=1&b=2");

        Assert.Equal(301, response.StatusCode);
        Assert.Equal("/redirect/?a=1&b=2", response.Header("Location"));
    }

    [Fact]
    public async Task Directory_WithoutIndex_IsForbiddenAndNotListed()
    {
        _site.Write("noindex/private-name.txt", "x");

        using HttpResponseMessage response = await _client.GetAsync("/noindex/");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.DoesNotContain("private-name", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/missing.html")]
    [InlineData("/missing/dir/")]
    [InlineData("/get-missing/page.html/")]
    public async Task Missing_Is404(string path)
    {
        _site.Write("get-missing/page.html", "x");
        using HttpResponseMessage response = await _client.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("OPTIONS")]
    public async Task OtherMethods_Are405WithAllow(string method)
    {
        _site.Write("methods/file.txt", "x");
        using HttpResponseMessage response = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/methods/file.txt"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(["GET", "HEAD"], response.Content.Headers.Allow.Order());
    }

    [Fact]
    public async Task LargeFile_StreamsIntact()
    {
        byte[] content = TempSite.RandomBytes(3 * 1024 * 1024 + 123, 1);
        _site.Write("large/big.bin", content);

        using HttpResponseMessage response = await _client.GetAsync("/large/big.bin");

        Assert.Equal(content.Length, response.Content.Headers.ContentLength);
        Assert.Equal(content, await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task EmptyFile_IsServedEmpty()
    {
        _site.Write("empty/nothing.txt", "");
        using HttpResponseMessage response = await _client.GetAsync("/empty/nothing.txt");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(0, response.Content.Headers.ContentLength);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task EncodedNames_AreDecoded()
    {
        _site.Write("names/a b/é ü.txt", "unicode");
        Assert.Equal("unicode", await _client.GetStringAsync("/names/a%20b/%C3%A9%20%C3%BC.txt"));
    }

    [Fact]
    public async Task ManyRequestsOnOneConnection_AllSucceed()
    {
        _site.Write("keepalive/a.txt", "aaaa");
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(fixture.EndPoint);
        // Pipelined: 50 requests in one write, then 50 whole responses in order.
        await connection.SendAsync(string.Concat(Enumerable.Repeat("GET /keepalive/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 50)));
        for (int i = 0; i < 50; i++)
        {
            RawHttpResponse response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.Equal("aaaa", response.BodyText);
        }
    }
}
