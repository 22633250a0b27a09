using System.Net;
using System.Text;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>gzip_static / brotli_static: file.br and file.gz served to clients that accept them, with Vary.</summary>
public sealed class PrecompressedTests(SiteFixture fixture) : IClassFixture<SiteFixture>
{
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    private string Resource(string name, bool br = true, bool gz = true)
    {
        _site.Write($"pc/{name}", "IDENTITY-" + name);
        if (br)
        {
            _site.Write($"pc/{name}.br", "BROTLI-" + name);
        }
        if (gz)
        {
            _site.Write($"pc/{name}.gz", "GZIP-" + name);
        }
        return $"/pc/{name}";
    }

    private async Task<HttpResponseMessage> GetAsync(string path, string? acceptEncoding, params (string Name, string Value)[] extra)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (acceptEncoding is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept-Encoding", acceptEncoding);
        }
        foreach ((string name, string value) in extra)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        return await _client.SendAsync(request);
    }

    [Theory]
    [InlineData("gzip, deflate, br", "br", "BROTLI-")]
    [InlineData("br", "br", "BROTLI-")]
    [InlineData("gzip", "gzip", "GZIP-")]
    [InlineData("x-gzip", "gzip", "GZIP-")]
    [InlineData("br;q=0, gzip", "gzip", "GZIP-")]
    [InlineData("gzip;q=1.0, br;q=0.5", "gzip", "GZIP-")]
    [InlineData("*", "br", "BROTLI-")]
    [InlineData("*;q=0", null, "IDENTITY-")]
    [InlineData("deflate", null, "IDENTITY-")]
    [InlineData(null, null, "IDENTITY-")]
    public async Task TheAcceptedRepresentationIsServed_WithVaryAndTheOriginalType(string? acceptEncoding, string? encoding, string prefix)
    {
        string path = Resource("app.js");

        using HttpResponseMessage response = await GetAsync(path, acceptEncoding);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(prefix + "app.js", await response.Content.ReadAsStringAsync());
        Assert.Equal(encoding is null ? [] : [encoding], response.Content.Headers.ContentEncoding);
        Assert.Equal(["Accept-Encoding"], response.Headers.Vary);
        Assert.Equal("application/javascript", response.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task OnlyTheSiblingsThatExistAreUsed()
    {
        string path = Resource("only-gz.css", br: false);
        using HttpResponseMessage brOnly = await GetAsync(path, "br");
        using HttpResponseMessage both = await GetAsync(path, "br, gzip");

        Assert.Equal("IDENTITY-only-gz.css", await brOnly.Content.ReadAsStringAsync());
        Assert.Equal(["Accept-Encoding"], brOnly.Headers.Vary);
        Assert.Equal("GZIP-only-gz.css", await both.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AFileWithoutSiblings_HasNoVary()
    {
        string path = Resource("plain.txt", br: false, gz: false);
        using HttpResponseMessage response = await GetAsync(path, "gzip, br");
        Assert.Equal("IDENTITY-plain.txt", await response.Content.ReadAsStringAsync());
        Assert.Empty(response.Headers.Vary);
        Assert.Empty(response.Content.Headers.ContentEncoding);
    }

    [Fact]
    public async Task EachRepresentationHasItsOwnETag_AndRevalidatesWithIt()
    {
        string path = Resource("tagged.html");
        using HttpResponseMessage identity = await GetAsync(path, null);
        using HttpResponseMessage brotli = await GetAsync(path, "br");
        Assert.NotEqual(identity.Headers.ETag, brotli.Headers.ETag);

        using HttpResponseMessage brotliAgain = await GetAsync(path, "br", ("If-None-Match", brotli.Headers.ETag!.Tag));
        using HttpResponseMessage identityWithBrotliTag = await GetAsync(path, null, ("If-None-Match", brotli.Headers.ETag!.Tag));

        Assert.Equal(HttpStatusCode.NotModified, brotliAgain.StatusCode);
        Assert.Equal(["Accept-Encoding"], brotliAgain.Headers.Vary);
        Assert.Equal(HttpStatusCode.OK, identityWithBrotliTag.StatusCode);
    }

    [Fact]
    public async Task RangesApplyToTheSelectedRepresentation()
    {
        string path = Resource("ranged.txt");
        using HttpResponseMessage response = await GetAsync(path, "gzip", ("Range", "bytes=0-3"));
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal("GZIP", Encoding.ASCII.GetString(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal($"bytes 0-3/{"GZIP-ranged.txt".Length}", response.Content.Headers.ContentRange!.ToString());
    }

    [Fact]
    public async Task Precompressed_CanBeTurnedOff()
    {
        string path = Resource("off.js");
        await using StaticServerHost server = await StaticServerHost.StartAsync(_site.Root, extraArgs: ["--precompressed", "off"]);
        using HttpClient client = server.CreateClient();
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "br, gzip");
        using HttpResponseMessage response = await client.SendAsync(request);
        Assert.Equal("IDENTITY-off.js", await response.Content.ReadAsStringAsync());
        Assert.Empty(response.Headers.Vary);
    }
}
