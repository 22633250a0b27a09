using System.Net;
using System.Net.Http.Headers;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>Single byte ranges, on a small file (served from the content cache) and a large one (streamed through the channel).</summary>
public sealed class RangeTests(SiteFixture fixture) : IClassFixture<SiteFixture>
{
    private readonly TempSite _site = fixture.Site;
    private readonly HttpClient _client = fixture.Client;

    public static TheoryData<int> Sizes => new() { 1000, 1024 * 1024 + 17 };

    private string File(int size)
    {
        string name = $"range/{size}.bin";
        _site.Write(name, TempSite.RandomBytes(size, size));
        return "/" + name;
    }

    private async Task<HttpResponseMessage> GetAsync(string path, string range, string? ifRange = null, HttpMethod? method = null)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Range", range);
        if (ifRange is not null)
        {
            request.Headers.TryAddWithoutValidation("If-Range", ifRange);
        }
        return await _client.SendAsync(request);
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task SatisfiableRanges_Are206WithContentRange(int size)
    {
        string path = File(size);
        byte[] content = TempSite.RandomBytes(size, size);
        (string Range, long From, long To)[] cases =
        [
            ("bytes=0-9", 0, 9),
            ("bytes=100-", 100, size - 1),
            ("bytes=-50", size - 50, size - 1),
            ("bytes=500-99999999", 500, size - 1),
            ($"bytes={size - 1}-{size - 1}", size - 1, size - 1),
            ("bytes=-99999999", 0, size - 1),
            (" bytes = 7 - 8 ".Replace("bytes = ", "bytes=", StringComparison.Ordinal), 7, 8),
        ];
        foreach ((string range, long from, long to) in cases)
        {
            using HttpResponseMessage response = await GetAsync(path, range);
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            Assert.Equal($"bytes {from}-{to}/{size}", response.Content.Headers.ContentRange!.ToString());
            Assert.Equal(to - from + 1, response.Content.Headers.ContentLength);
            Assert.Equal(content[(int)from..(int)(to + 1)], await response.Content.ReadAsByteArrayAsync());
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task UnsatisfiableRanges_Are416(int size)
    {
        string path = File(size);
        foreach (string range in new[] { $"bytes={size}-", $"bytes={size + 10}-{size + 20}", "bytes=-0" })
        {
            using HttpResponseMessage response = await GetAsync(path, range);
            Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, response.StatusCode);
            Assert.Equal($"bytes */{size}", response.Content.Headers.ContentRange!.ToString());
        }
    }

    [Theory]
    [InlineData("bytes=0-1,5-6")]  // several ranges: served whole
    [InlineData("bytes=9-3")]      // invalid
    [InlineData("bytes=a-b")]
    [InlineData("items=0-1")]      // another unit
    [InlineData("bytes 0-1")]
    public async Task IgnoredRanges_Serve200WithTheWholeFile(string range)
    {
        string path = File(1000);
        using HttpResponseMessage response = await GetAsync(path, range);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1000, (await response.Content.ReadAsByteArrayAsync()).Length);
    }

    [Fact]
    public async Task IfRange_HonoursTheRangeOnlyWhenTheValidatorMatches()
    {
        string path = File(1000);
        using HttpResponseMessage full = await _client.GetAsync(path);
        string etag = full.Headers.ETag!.Tag;
        string lastModified = full.Content.Headers.LastModified!.Value.ToString("R");

        using HttpResponseMessage sameTag = await GetAsync(path, "bytes=0-9", etag);
        using HttpResponseMessage otherTag = await GetAsync(path, "bytes=0-9", "\"other\"");
        using HttpResponseMessage weakTag = await GetAsync(path, "bytes=0-9", "W/" + etag);
        using HttpResponseMessage sameDate = await GetAsync(path, "bytes=0-9", lastModified);
        using HttpResponseMessage otherDate = await GetAsync(path, "bytes=0-9", DateTimeOffset.UnixEpoch.ToString("R"));

        Assert.Equal(HttpStatusCode.PartialContent, sameTag.StatusCode);
        Assert.Equal(HttpStatusCode.OK, otherTag.StatusCode);
        Assert.Equal(HttpStatusCode.OK, weakTag.StatusCode);
        Assert.Equal(HttpStatusCode.PartialContent, sameDate.StatusCode);
        Assert.Equal(HttpStatusCode.OK, otherDate.StatusCode);
    }

    [Fact]
    public async Task Head_IgnoresRange()
    {
        string path = File(1000);
        using HttpResponseMessage response = await GetAsync(path, "bytes=0-9", method: HttpMethod.Head);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1000, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task ConcurrentRangesOfALargeFile_AllComeBackRight()
    {
        const int size = 2 * 1024 * 1024;
        string path = File(size);
        byte[] content = TempSite.RandomBytes(size, size);
        var random = new Random(42);
        var ranges = Enumerable.Range(0, 32).Select(_ =>
        {
            long from = random.Next(size);
            long to = Math.Min(size - 1, from + random.Next(1, 400_000));
            return (From: from, To: to);
        }).ToArray();

        byte[][] bodies = await Task.WhenAll(ranges.Select(async r =>
        {
            using HttpResponseMessage response = await GetAsync(path, $"bytes={r.From}-{r.To}");
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            return await response.Content.ReadAsByteArrayAsync();
        }));

        for (int i = 0; i < ranges.Length; i++)
        {
            Assert.Equal(content[(int)ranges[i].From..(int)(ranges[i].To + 1)], bodies[i]);
        }
    }
}
