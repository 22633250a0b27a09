using System.Net;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>Files that change on disk between two requests are served fresh: the cache notices.</summary>
public sealed class FreshnessTests(SiteFixture fixture) : IClassFixture<SiteFixture>
{
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    [Fact]
    public async Task ASmallFileRewrittenWithTheSameLength_IsServedFresh()
    {
        _site.Write("fresh/same.txt", "AAAA");
        using HttpResponseMessage first = await _client.GetAsync("/fresh/same.txt");
        Assert.Equal("AAAA", await first.Content.ReadAsStringAsync());
        // Cached now: a second request comes from memory.
        long hits = fixture.Server.Stats.ContentCacheHits;
        Assert.Equal("AAAA", await _client.GetStringAsync("/fresh/same.txt"));
        Assert.True(fixture.Server.Stats.ContentCacheHits > hits);

        File.WriteAllText(_site.PathOf("fresh/same.txt"), "BBBB");
        using HttpResponseMessage second = await _client.GetAsync("/fresh/same.txt");

        Assert.Equal("BBBB", await second.Content.ReadAsStringAsync());
        Assert.NotEqual(first.Headers.ETag, second.Headers.ETag);
    }

    [Fact]
    public async Task AFileJustWritten_IsReadAgainUntilItsTimestampCanBeTrusted()
    {
        // Both writes may land in the same timestamp tick, so length and mtime cannot tell them apart.
        string path = _site.PathOf("fresh/racy/racy.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "first");
        Assert.Equal("first", await _client.GetStringAsync("/fresh/racy/racy.txt"));

        File.WriteAllText(path, "again");

        Assert.Equal("again", await _client.GetStringAsync("/fresh/racy/racy.txt"));
    }

    [Fact]
    public async Task AFileThatGrowsOrShrinks_IsServedFresh()
    {
        _site.Write("fresh/size.txt", "short");
        Assert.Equal("short", await _client.GetStringAsync("/fresh/size.txt"));

        File.WriteAllText(_site.PathOf("fresh/size.txt"), "a good deal longer");
        Assert.Equal("a good deal longer", await _client.GetStringAsync("/fresh/size.txt"));

        File.WriteAllText(_site.PathOf("fresh/size.txt"), "s");
        Assert.Equal("s", await _client.GetStringAsync("/fresh/size.txt"));
    }

    [Fact]
    public async Task AFileWhoseMtimeIsSetBack_IsServedFresh()
    {
        DateTime mtime = new(2022, 2, 2, 2, 2, 2, DateTimeKind.Utc);
        _site.Write("fresh/touched.txt", "one", mtime);
        Assert.Equal("one", await _client.GetStringAsync("/fresh/touched.txt"));

        _site.Write("fresh/touched.txt", "two", mtime.AddSeconds(-10));
        Assert.Equal("two", await _client.GetStringAsync("/fresh/touched.txt"));
    }

    [Fact]
    public async Task ALargeFileModified_IsStreamedFresh()
    {
        byte[] before = TempSite.RandomBytes(1024 * 1024, 1);
        byte[] after = TempSite.RandomBytes(1024 * 1024, 2);
        _site.Write("fresh/large.bin", before);
        Assert.Equal(before, await _client.GetByteArrayAsync("/fresh/large.bin"));

        File.WriteAllBytes(_site.PathOf("fresh/large.bin"), after);
        Assert.Equal(after, await _client.GetByteArrayAsync("/fresh/large.bin"));
    }

    [Fact]
    public async Task AFileReplacedByRename_IsServedFresh()
    {
        DateTime mtime = new(2021, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        _site.Write("fresh/deployed.html", "version 1", mtime);
        Assert.Equal("version 1", await _client.GetStringAsync("/fresh/deployed.html"));

        // An atomic deploy: the new file is written aside and renamed over the old one.
        string staged = _site.Write("fresh/.deployed.html.tmp", "version 2", mtime.AddMinutes(1));
        File.Move(staged, _site.PathOf("fresh/deployed.html"), overwrite: true);

        Assert.Equal("version 2", await _client.GetStringAsync("/fresh/deployed.html"));
    }

    [Fact]
    public async Task ADeletedFile_Is404()
    {
        _site.Write("fresh/deleted.txt", "here");
        Assert.Equal("here", await _client.GetStringAsync("/fresh/deleted.txt"));

        File.Delete(_site.PathOf("fresh/deleted.txt"));
        using HttpResponseMessage response = await _client.GetAsync("/fresh/deleted.txt");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task AnIndexAddedOrRemoved_ChangesTheDirectoryResponse()
    {
        Directory.CreateDirectory(_site.PathOf("fresh/dir"));
        using (HttpResponseMessage before = await _client.GetAsync("/fresh/dir/"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, before.StatusCode);
        }
        _site.Write("fresh/dir/index.html", "now with an index");
        Assert.Equal("now with an index", await _client.GetStringAsync("/fresh/dir/"));

        File.Delete(_site.PathOf("fresh/dir/index.html"));
        using HttpResponseMessage after = await _client.GetAsync("/fresh/dir/");
        Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
    }

    [Fact]
    public async Task AConditionalRequestAfterAChange_GetsTheNewBody()
    {
        _site.Write("fresh/etag.txt", "old body");
        using HttpResponseMessage first = await _client.GetAsync("/fresh/etag.txt");

        _site.Write("fresh/etag.txt", "new body", DateTime.UtcNow.AddMinutes(-30));
        var request = new HttpRequestMessage(HttpMethod.Get, "/fresh/etag.txt");
        request.Headers.IfNoneMatch.Add(first.Headers.ETag!);
        using HttpResponseMessage second = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("new body", await second.Content.ReadAsStringAsync());
    }
}
