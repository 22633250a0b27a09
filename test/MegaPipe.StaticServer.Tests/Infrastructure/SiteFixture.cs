using System.Net;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>A temporary site and the real server on it, shared by the tests of a class (each test uses its own files).</summary>
public class SiteFixture : IAsyncLifetime
{
    public TempSite Site { get; } = new();
    public StaticServerHost Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public IPEndPoint EndPoint => Server.EndPoint;

    protected virtual string Transport => "megapipe";

    protected virtual string[] ExtraArgs => [];

    protected virtual void Configure(StaticServerOptions options)
    {
    }

    public async Task InitializeAsync()
    {
        Server = await StaticServerHost.StartAsync(Site.Root, Transport, Configure, ExtraArgs);
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Site.Dispose();
    }
}

/// <summary>The defaults, on Kestrel's Sockets transport: file contents come from RandomAccess.</summary>
public sealed class SocketsSiteFixture : SiteFixture
{
    protected override string Transport => "sockets";
}

/// <summary>MegaPipe with application code on the thread pool: file reads are posted to the channel.</summary>
public sealed class ThreadPoolSiteFixture : SiteFixture
{
    protected override string[] ExtraArgs => ["--MegaPipe:UnsafeInlineScheduling", "false"];
}

/// <summary>Every option away from its default, set the way a user would: on the command line.</summary>
public sealed class ConfiguredSiteFixture : SiteFixture
{
    public string AccessLogPath => Path.Combine(Site.Base, "access.log");

    protected override string[] ExtraArgs =>
    [
        "--autoindex", "on",
        "--index", "home.html index.html",
        "--default_type", "text/plain",
        "--types:foo", "application/x-foo",
        "--cache_control", "public, max-age=60",
        "--access_log", AccessLogPath,
    ];
}
