using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MegaPipe.StaticServer;

/// <summary>Builds the static file server: Kestrel on MegaPipe (or Sockets) in front of <see cref="StaticFileHandler"/>.</summary>
public static class StaticServerApp
{
    /// <summary>
    /// Builds the server from command-line arguments (<c>--root ./site --urls http://0.0.0.0:8080</c>,
    /// <c>--transport megapipe|sockets</c>, the options of <see cref="StaticServerOptions"/>, and the
    /// transport's <c>--MegaPipe:...</c> options). <paramref name="configure"/> adjusts the options after
    /// the arguments; <paramref name="configureApp"/> may add middleware in front of the handler.
    /// </summary>
    public static WebApplication Build(string[] args, Action<StaticServerOptions>? configure = null, Action<WebApplication>? configureApp = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("MegaPipe.Transport", LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        // Hosting opens a logging scope per request whenever its category logs at all; it logs nothing we keep.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        IConfiguration config = builder.Configuration;

        string transport = config["transport"] ?? "megapipe";
        if (transport.Equals("megapipe", StringComparison.OrdinalIgnoreCase))
        {
            // The handler never blocks on file contents (they are channel reads), so by default it runs
            // on the channel thread, as nginx runs in its event loop; --MegaPipe:UnsafeInlineScheduling false turns it off.
            bool inline = config.GetValue("MegaPipe:UnsafeInlineScheduling", true);
            builder.WebHost.UseMegaPipe(o => o.UnsafeInlineScheduling = inline);
        }
        else if (!transport.Equals("sockets", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"unknown transport '{transport}': use megapipe or sockets");
        }
        if (!HttpsConfiguration.Apply(builder) && config["urls"] is null && config["ASPNETCORE_URLS"] is null)
        {
            builder.WebHost.UseUrls("http://127.0.0.1:8080");
        }

        StaticServerOptions options = StaticServerOptions.FromConfiguration(config);
        configure?.Invoke(options);
        options.Validate();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<StaticServerStats>();
        builder.Services.AddSingleton(sp => new OpenFileCache(options, sp.GetRequiredService<StaticServerStats>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("StaticServer")));
        if (options.AccessLog is { } log)
        {
            builder.Services.AddSingleton(_ => new AccessLog(log));
        }
        builder.Services.AddSingleton(sp => new StaticFileHandler(options, sp.GetRequiredService<OpenFileCache>(), sp.GetRequiredService<StaticServerStats>(), sp.GetService<AccessLog>()));

        WebApplication app = builder.Build();
        configureApp?.Invoke(app);
        StaticFileHandler handler = app.Services.GetRequiredService<StaticFileHandler>();
        app.Run(handler.InvokeAsync);
        return app;
    }
}
