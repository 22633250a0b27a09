// Licensed under the MIT License. See LICENSE in the repository root.

using MegaPipe.Transport;
using Microsoft.AspNetCore.Connections;
using MegaPipe.Transport.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

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
            // Added after Kestrel's own transport: Kestrel asks the last registered factory first.
            services.AddSingleton<IConnectionListenerFactory, MegaPipeTransportFactory>();
        });
    }
}
