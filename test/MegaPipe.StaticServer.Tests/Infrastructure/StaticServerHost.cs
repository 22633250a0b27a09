using System.Net;
using MegaPipe.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>The real StaticServer on 127.0.0.1:0 in this process, on MegaPipe or Sockets.</summary>
public sealed class StaticServerHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private StaticServerHost(WebApplication app, Uri address, ChannelProbe probe)
    {
        _app = app;
        BaseAddress = address;
        Probe = probe;
        Stats = app.Services.GetRequiredService<StaticServerStats>();
    }

    public Uri BaseAddress { get; }
    public IPEndPoint EndPoint => new(IPAddress.Loopback, BaseAddress.Port);
    public StaticServerStats Stats { get; }
    public IServiceProvider Services => _app.Services;

    /// <summary>What the last request saw of the MegaPipe connection features.</summary>
    public ChannelProbe Probe { get; }

    public static async Task<StaticServerHost> StartAsync(string root, string transport = "megapipe", Action<StaticServerOptions>? configure = null, params string[] extraArgs)
    {
        string[] args = ["--root", root, "--urls", "http://127.0.0.1:0", "--transport", transport, "--Logging:LogLevel:Default", "Warning", .. extraArgs];
        var probe = new ChannelProbe();
        WebApplication app = StaticServerApp.Build(args, configure, app => app.Use((context, next) =>
        {
            probe.Record(context);
            return next(context);
        }));
        await app.StartAsync().WaitAsync(TestTimeouts.Default);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new StaticServerHost(app, new Uri(address), probe);
    }

    public HttpClient CreateClient()
    {
        var handler = new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TestTimeouts.Default,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        };
        return new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = TestTimeouts.Default };
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(TestTimeouts.Default);
        await _app.DisposeAsync();
    }
}

/// <summary>Records the MegaPipe features a request could reach through HttpContext.Features.</summary>
public sealed class ChannelProbe
{
    private IMegaPipeFileReader? _reader;
    private IMegaPipeChannelFeature? _channel;
    private int _requests;

    public IMegaPipeFileReader? Reader => Volatile.Read(ref _reader);
    public IMegaPipeChannelFeature? Channel => Volatile.Read(ref _channel);
    public int Requests => Volatile.Read(ref _requests);

    public void Record(HttpContext context)
    {
        Volatile.Write(ref _reader, context.Features.Get<IMegaPipeFileReader>());
        Volatile.Write(ref _channel, context.Features.Get<IMegaPipeChannelFeature>());
        Interlocked.Increment(ref _requests);
    }
}
