using System.Net;
using System.Net.Http.Headers;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>ETag / Last-Modified validators and If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since.</summary>
public sealed class ConditionalTests(SiteFixture fixture) : IClassFixture<SiteFixture>
{
    private static readonly DateTime s_modified = new(2023, 5, 6, 7, 8, 9, DateTimeKind.Utc);
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    private async Task<(string Path, EntityTagHeaderValue ETag)> FileAsync(string name)
    {
        _site.Write("cond/" + name, "conditional body", s_modified);
        using HttpResponseMessage response = await _client.GetAsync("/cond/" + name);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return ("/cond/" + name, response.Headers.ETag!);
    }

    private async Task<HttpResponseMessage> SendAsync(string path, Action<HttpRequestHeaders> headers, HttpMethod? method = null)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        headers(request.Headers);
        return await _client.SendAsync(request);
    }

    [Fact]
    public async Task IfNoneMatch_WithTheCurrentETag_Is304WithValidatorsAndNoBody()
    {
        (string path, EntityTagHeaderValue etag) = await FileAsync("a.txt");

        using HttpResponseMessage response = await SendAsync(path, h => h.IfNoneMatch.Add(etag));

        Assert.Equal(HttpStatusCode.NotModified, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(etag, response.Headers.ETag);
        Assert.Equal(new DateTimeOffset(s_modified), response.Content.Headers.LastModified);
    }

    [Theory]
    [InlineData("\"nope\", {0}")]
    [InlineData("W/{0}")]
    [InlineData("\"a\",\"b\" ,  {0} ,\"c\"")]
    [InlineData("*")]
    public async Task IfNoneMatch_ListsWeakTagsAndStar_Match(string format)
    {
        (string path, EntityTagHeaderValue etag) = await FileAsync("list.txt");
        using HttpResponseMessage response = await SendAsync(path, h => h.TryAddWithoutValidation("If-None-Match", string.Format(System.Globalization.CultureInfo.InvariantCulture, format, etag.Tag)));
        Assert.Equal(HttpStatusCode.NotModified, response.StatusCode);
    }

    [Fact]
    public async Task IfNoneMatch_WithAnotherETag_Is200()
    {
        (string path, _) = await FileAsync("other.txt");
        using HttpResponseMessage response = await SendAsync(path, h => h.IfNoneMatch.Add(new EntityTagHeaderValue("\"0-0\"")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("conditional body", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task IfModifiedSince_AtOrAfterTheModification_Is304()
    {
        (string path, _) = await FileAsync("ims.txt");

        using HttpResponseMessage same = await SendAsync(path, h => h.IfModifiedSince = s_modified);
        using HttpResponseMessage later = await SendAsync(path, h => h.IfModifiedSince = s_modified.AddDays(1));
        using HttpResponseMessage earlier = await SendAsync(path, h => h.IfModifiedSince = s_modified.AddSeconds(-1));
        using HttpResponseMessage garbage = await SendAsync(path, h => h.TryAddWithoutValidation("If-Modified-Since", "not a date"));

        Assert.Equal(HttpStatusCode.NotModified, same.StatusCode);
        Assert.Equal(HttpStatusCode.NotModified, later.StatusCode);
        Assert.Equal(HttpStatusCode.OK, earlier.StatusCode);
        Assert.Equal(HttpStatusCode.OK, garbage.StatusCode);
    }

    [Fact]
    public async Task IfNoneMatch_TakesPrecedenceOverIfModifiedSince()
    {
        (string path, _) = await FileAsync("precedence.txt");
        using HttpResponseMessage response = await SendAsync(path, h =>
        {
            h.IfNoneMatch.Add(new EntityTagHeaderValue("\"stale\""));
            h.IfModifiedSince = s_modified.AddDays(1);
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Head_IsConditionalToo()
    {
        (string path, EntityTagHeaderValue etag) = await FileAsync("head.txt");
        using HttpResponseMessage response = await SendAsync(path, h => h.IfNoneMatch.Add(etag), HttpMethod.Head);
        Assert.Equal(HttpStatusCode.NotModified, response.StatusCode);
    }

    [Fact]
    public async Task IfMatch_AndIfUnmodifiedSince_FailWith412()
    {
        (string path, EntityTagHeaderValue etag) = await FileAsync("match.txt");

        using HttpResponseMessage matching = await SendAsync(path, h => h.IfMatch.Add(etag));
        using HttpResponseMessage other = await SendAsync(path, h => h.IfMatch.Add(new EntityTagHeaderValue("\"x\"")));
        using HttpResponseMessage weak = await SendAsync(path, h => h.TryAddWithoutValidation("If-Match", "W/" + etag.Tag));
        using HttpResponseMessage unmodified = await SendAsync(path, h => h.IfUnmodifiedSince = s_modified);
        using HttpResponseMessage modified = await SendAsync(path, h => h.IfUnmodifiedSince = s_modified.AddSeconds(-1));

        Assert.Equal(HttpStatusCode.OK, matching.StatusCode);
        Assert.Equal(HttpStatusCode.PreconditionFailed, other.StatusCode);
        Assert.Equal(HttpStatusCode.PreconditionFailed, weak.StatusCode); // If-Match compares strongly
        Assert.Equal(HttpStatusCode.OK, unmodified.StatusCode);
        Assert.Equal(HttpStatusCode.PreconditionFailed, modified.StatusCode);
    }

    [Fact]
    public async Task ETag_IsStableAcrossRequests_AndDiffersBetweenFiles()
    {
        (_, EntityTagHeaderValue first) = await FileAsync("stable-a.txt");
        _site.Write("cond/stable-b.txt", "a different, longer body", s_modified);
        using HttpResponseMessage again = await _client.GetAsync("/cond/stable-a.txt");
        using HttpResponseMessage other = await _client.GetAsync("/cond/stable-b.txt");

        Assert.Equal(first, again.Headers.ETag);
        Assert.NotEqual(first, other.Headers.ETag);
    }
}
