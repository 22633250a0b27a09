using System.Net;
using MegaPipe.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>A real Kestrel server on one transport, listening on loopback with an OS-assigned port.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly ITestOutputHelper? _output;
    private int _disposed;

    private TestServer(WebApplication app, CollectingLoggerProvider logs, ITestOutputHelper? output)
    {
        App = app;
        Logs = logs;
        _output = output;
        Addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.ToArray();
    }

    public WebApplication App { get; }

    public CollectingLoggerProvider Logs { get; }

    /// <summary>The bound addresses as Kestrel reports them (IServerAddressesFeature), port 0 resolved.</summary>
    public IReadOnlyList<string> Addresses { get; }

    /// <summary>The first bound address.</summary>
    public Uri BaseAddress => new(Addresses[0]);

    /// <summary>The first bound address as an IP endpoint.</summary>
    public IPEndPoint EndPoint
    {
        get
        {
            Uri uri = BaseAddress;
            return new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port);
        }
    }

    /// <summary>
    /// Starts a server. <paramref name="configureKestrel"/> adds the endpoints; by default the server
    /// listens on 127.0.0.1:0. MegaPipe runs with ChannelCount = 2 unless <paramref name="configureMegaPipe"/> says otherwise.
    /// </summary>
    public static async Task<TestServer> StartAsync(
        TestTransport transport,
        Action<WebApplication> configureApp,
        Action<KestrelServerOptions>? configureKestrel = null,
        Action<MegaPipeTransportOptions>? configureMegaPipe = null,
        ITestOutputHelper? output = null,
        Action<WebApplicationBuilder>? configureBuilder = null)
    {
        var logs = new CollectingLoggerProvider();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = "Development",
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("MegaPipe.Transport", LogLevel.Debug);
        // Kestrel's HTTPS middleware logs handshake failures and timeouts at Debug.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel.Https", LogLevel.Debug);
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            if (configureKestrel is null)
            {
                options.Listen(IPAddress.Loopback, 0);
            }
            else
            {
                configureKestrel(options);
            }
        });
        if (transport.IsMegaPipe())
        {
            builder.WebHost.UseMegaPipe(options =>
            {
                options.ChannelCount = 2;
                options.Engine = transport == TestTransport.MegaPipeEpoll ? ChannelEngine.Epoll : ChannelEngine.IoUring;
                configureMegaPipe?.Invoke(options);
            });
        }

        configureBuilder?.Invoke(builder);
        WebApplication app = builder.Build();
        configureApp(app);
        try
        {
            await app.StartAsync().WaitAsync(TestTimeouts.Default);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        return new TestServer(app, logs, output);
    }

    /// <summary>
    /// Fails if the server logged an error or worse (an unexpected exception in Kestrel or the
    /// transport), other than the event names listed.
    /// </summary>
    public void AssertNoErrorsLogged(params string[] allowedEventNames)
    {
        LogEntry[] errors = Logs.Entries
            .Where(e => e.Level >= LogLevel.Error && !allowedEventNames.Contains(e.EventId.Name))
            .ToArray();
        Assert.True(errors.Length == 0, "Errors logged:\n" + string.Join("\n", errors.Select(e => $"[{e.Level}] {e.Category} ({e.EventId}): {e.Message} {e.Exception}")));
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            // Connections a test left open are closed after 10 s; a hang beyond that is a failure.
            using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await App.StopAsync(stopTimeout.Token).WaitAsync(TestTimeouts.Default);
            await App.DisposeAsync().AsTask().WaitAsync(TestTimeouts.Default);
        }
        finally
        {
            if (_output is not null)
            {
                foreach (LogEntry entry in Logs.Entries.Where(e => e.Level >= LogLevel.Warning))
                {
                    _output.WriteLine($"[{entry.Level}] {entry.Category} ({entry.EventId}): {entry.Message} {entry.Exception}");
                }
            }
        }
    }
}
