using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>
/// Paths that try to leave the root get 400 or 404 and never a byte from outside it: raw request
/// targets (HttpClient would normalize them), and symbolic links pointing out. The site's parent
/// and a sibling directory hold files with <see cref="TempSite.Secret"/>.
/// </summary>
public sealed class TraversalTests : IClassFixture<TraversalTests.Fixture>
{
    private readonly Fixture _fixture;

    public TraversalTests(Fixture fixture) => _fixture = fixture;

    public sealed class Fixture : SiteFixture
    {
        public Fixture()
        {
            Site.Write("inside.txt", "inside");
            Site.Write("sub/file.txt", "sub file");
            // Links out of the root: absolute, relative, to a directory, through a chain.
            Site.Symlink("link-out.txt", Path.Combine(Site.Outside, "secret.txt"));
            Site.Symlink("link-out-relative.txt", "../outside/secret.txt");
            Site.Symlink("dir-out", Path.Combine(Site.Outside, "dir"));
            Site.Symlink("dir-out-relative", "../outside/dir");
            Site.Symlink("chain-1", "chain-2");
            Site.Symlink("chain-2", "sub/chain-3");
            Site.Symlink("sub/chain-3", "../../outside/secret.txt");
            Site.Symlink("root-link", "/");
            Site.Symlink("parent-link", "..");
            Site.Symlink("loop", "loop");
            Site.Symlink("sub/via-inner-link", "../dir-out/secret.txt");
            // Links that stay inside are followed.
            Site.Symlink("link-in.txt", "inside.txt");
            Site.Symlink("dir-in", "sub");
            Site.Symlink("sub/up", "..");
            Site.Symlink("absolute-in.txt", Path.Combine(Site.Root, "sub", "file.txt"));
        }
    }

    [Theory]
    [InlineData("/../secret.txt")]
    [InlineData("/../../secret.txt")]
    [InlineData("/sub/../../secret.txt")]
    [InlineData("/./inside.txt")]
    [InlineData("/%2e%2e/secret.txt")]
    [InlineData("/%2E%2E/%2e%2e/secret.txt")]
    [InlineData("/.%2e/secret.txt")]
    [InlineData("/%2e./secret.txt")]
    [InlineData("/sub/%2e%2e/%2e%2e/secret.txt")]
    [InlineData("/..%2fsecret.txt")]
    [InlineData("/..%2Fsecret.txt")]
    [InlineData("/sub/..%2f..%2fsecret.txt")]
    [InlineData("/%2e%2e%2f%2e%2e%2fsecret.txt")]
    [InlineData("/..%5csecret.txt")]
    [InlineData("/..\\secret.txt")]
    [InlineData("/sub/..%5C..%5Csecret.txt")]
    [InlineData("/inside.txt%00")]
    [InlineData("/inside.txt%00.html")]
    [InlineData("/%00/../secret.txt")]
    [InlineData("/%252e%252e/secret.txt")]
    [InlineData("/%c0%ae%c0%ae/secret.txt")]
    [InlineData("//secret.txt")]
    [InlineData("/outside/secret.txt")]
    [InlineData("/../outside/secret.txt")]
    [InlineData("/sub/%2e%2e/%2e%2e/outside/secret.txt")]
    [InlineData("http://127.0.0.1/../secret.txt")]
    [InlineData("http://127.0.0.1/%2e%2e/secret.txt")]
    public async Task TraversalTargets_Are400Or404_AndRevealNothing(string target)
    {
        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, target);

        Assert.True(response.StatusCode is 400 or 404, $"{target}: {response.StatusCode}");
        Assert.DoesNotContain(TempSite.Secret, response.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/link-out.txt")]
    [InlineData("/link-out-relative.txt")]
    [InlineData("/dir-out/secret.txt")]
    [InlineData("/dir-out-relative/secret.txt")]
    [InlineData("/chain-1")]
    [InlineData("/root-link/etc/passwd")]
    [InlineData("/parent-link/secret.txt")]
    [InlineData("/parent-link/outside/secret.txt")]
    [InlineData("/sub/via-inner-link")]
    [InlineData("/loop")]
    [InlineData("/dir-out/")]
    public async Task LinksPointingOutOfTheRoot_Are404(string target)
    {
        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, target);
        Assert.Equal(404, response.StatusCode);
        Assert.DoesNotContain(TempSite.Secret, response.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/link-in.txt", "inside")]
    [InlineData("/dir-in/file.txt", "sub file")]
    [InlineData("/sub/up/inside.txt", "inside")]
    [InlineData("/sub/up/sub/up/sub/file.txt", "sub file")]
    [InlineData("/absolute-in.txt", "sub file")]
    public async Task LinksStayingInside_AreFollowed(string target, string expected)
    {
        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, target);
        Assert.Equal(200, response.StatusCode);
        Assert.Equal(expected, response.BodyText);
    }

    [Fact]
    public async Task ALinkRepointedOutOfTheRoot_IsNoLongerFollowed()
    {
        TempSite site = _fixture.Site;
        site.Symlink("moving.txt", "inside.txt");
        Assert.Equal("inside", (await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, "/moving.txt")).BodyText);

        File.Delete(site.PathOf("moving.txt"));
        site.Symlink("moving.txt", Path.Combine(site.Outside, "secret.txt"));
        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, "/moving.txt");

        Assert.Equal(404, response.StatusCode);
        Assert.DoesNotContain(TempSite.Secret, response.BodyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ADirectorySwappedForALinkOut_NeverServesOutsideBytes()
    {
        TempSite site = _fixture.Site;
        // Same length as the secret, same mtime: a stat of the new path cannot tell them apart.
        DateTime mtime = new(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        string inside = new('i', TempSite.Secret.Length);
        site.Write("swap/page.txt", inside, mtime);
        File.WriteAllText(Path.Combine(site.Outside, "swapdir-page.txt"), "unused");
        string outsideDir = Path.Combine(site.Outside, "swapdir");
        Directory.CreateDirectory(outsideDir);
        File.WriteAllText(Path.Combine(outsideDir, "page.txt"), TempSite.Secret);
        File.SetLastWriteTimeUtc(Path.Combine(outsideDir, "page.txt"), mtime);
        Assert.Equal(inside, (await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, "/swap/page.txt")).BodyText);

        Directory.Move(site.PathOf("swap"), site.PathOf("swap-old"));
        site.Symlink("swap", outsideDir);
        RawHttpResponse response = await RawHttpConnection.SendOnceAsync(_fixture.EndPoint, "/swap/page.txt");

        Assert.True(response.StatusCode is 200 or 404, response.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.DoesNotContain(TempSite.Secret, response.BodyText, StringComparison.Ordinal);
    }
}
