// Licensed under the MIT License. See LICENSE in the repository root.

using MegaPipe.Transport;
using Microsoft.AspNetCore.Connections;
using MegaPipe.Transport.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using System.Diagnostics.Metrics;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Puts Kestrel on the MegaPipe transport.</summary>
public static class WebHostBuilderMegaPipeExtensions
{
    /// <summary>
    /// Serves Kestrel's endpoints through MegaPipe channels. Endpoints the transport cannot bind
    /// (such as a file-handle endpoint) are left to the next registered transport.
    /// Options bind from the "MegaPipe" configuration section.
    /// </summary>
    public static IWebHostBuilder UseMegaPipe(this IWebHostBuilder builder) => builder.UseMegaPipe(_ => { });

    /// <summary>Serves Kestrel's endpoints through MegaPipe channels, with options.</summary>
    public static IWebHostBuilder UseMegaPipe(this IWebHostBuilder builder, Action<MegaPipeTransportOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        return builder.ConfigureServices((context, services) =>
        {
            services.AddOptions<MegaPipeTransportOptions>().Bind(context.Configuration.GetSection("MegaPipe")).Configure(configure).ValidateOnStart();
            // Every option is checked when the host starts: a bad value stops it with a message naming the option.
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MegaPipeTransportOptions>, MegaPipeTransportOptionsValidator>());
            // Endpoints set up with UseMegaPipeHttps, found by the factory when Kestrel binds them.
            services.TryAddSingleton<HttpsEndpointRegistry>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<KestrelServerOptions>, HttpsConfigurationEndpoints>());
            // Added after Kestrel's own transport: Kestrel asks the last registered factory first.
            services.AddSingleton<IConnectionListenerFactory>(provider => new MegaPipeTransportFactory(
                provider.GetRequiredService<IOptions<MegaPipeTransportOptions>>(),
                provider.GetRequiredService<ILoggerFactory>(),
                provider.GetService<IMemoryPoolFactory<byte>>(),
                provider.GetService<IMeterFactory>(),
                provider.GetRequiredService<HttpsEndpointRegistry>()));
        });
    }
}
