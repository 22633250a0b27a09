// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MegaPipe.Transport.Internal;

// MegaPipeTransportOptions.TlsForConfiguredEndpoints: every HTTPS endpoint of Kestrel's configuration
// (Kestrel:Endpoints:<name> with an https URL) gets UseMegaPipeHttps with the options Kestrel's configuration loader
// built for it (certificate loaded, SslProtocols and ClientCertificateMode from configuration). The loader calls the
// callback registered for the endpoint's name with those options and applies its own UseHttps only when the endpoint
// is not TLS yet, so the callback is the place. A callback the application registered for the same name
// (ConfigurationLoader.Endpoint(name, ...)) is kept: it runs first, and if it made the endpoint TLS itself (UseHttps),
// it stays that way. Endpoints with an Sni section keep Kestrel's SslStream.
internal sealed class HttpsConfigurationEndpoints : IPostConfigureOptions<KestrelServerOptions>
{
    private readonly IOptions<MegaPipeTransportOptions> _transportOptions;
    private readonly ILogger _logger;

    public HttpsConfigurationEndpoints(IOptions<MegaPipeTransportOptions> transportOptions, ILoggerFactory loggerFactory)
    {
        _transportOptions = transportOptions;
        _logger = loggerFactory.CreateLogger("MegaPipe.Transport");
    }

    public void PostConfigure(string? name, KestrelServerOptions options)
    {
        if (!_transportOptions.Value.TlsForConfiguredEndpoints || options.ConfigurationLoader is not { } loader)
        {
            return;
        }
        IDictionary<string, Action<EndpointConfiguration>> callbacks;
        try
        {
            // The loader keeps the callbacks in a private dictionary; reading it is what lets an application's own
            // callback be wrapped instead of replaced (KestrelConfigurationLoader.Endpoint overwrites).
            callbacks = GetEndpointConfigurations(loader);
        }
        catch (MissingMemberException e)
        {
            MegaPipeTlsLog.ConfigurationUnavailable(_logger, "this Kestrel keeps its endpoint callbacks where the transport cannot add to them without replacing the application's (" + e.Message + ")");
            return;
        }
        foreach (IConfigurationSection endpoint in loader.Configuration.GetSection("Endpoints").GetChildren())
        {
            string endpointName = endpoint.Key;
            callbacks.TryGetValue(endpointName, out Action<EndpointConfiguration>? application);
            callbacks[endpointName] = configuration =>
            {
                application?.Invoke(configuration);
                Apply(endpointName, configuration);
            };
        }
    }

    private void Apply(string name, EndpointConfiguration endpoint)
    {
        if (!endpoint.IsHttps || IsTls(endpoint.ListenOptions))
        {
            return;
        }
        if (endpoint.ConfigSection.GetSection("Sni").GetChildren().Any())
        {
            MegaPipeTlsLog.ConfigurationEndpointSkipped(_logger, name, "it has an Sni section (certificates per host name), which only Kestrel's SslStream applies");
            return;
        }
        endpoint.ListenOptions.UseMegaPipeHttps(endpoint.HttpsOptions);
        MegaPipeTlsLog.ConfigurationEndpoint(_logger, name);
    }

    // Whether the application's callback already set up HTTPS (ListenOptions.IsTls is internal).
    private static bool IsTls(ListenOptions listenOptions)
    {
        try
        {
            return GetIsTls(listenOptions);
        }
        catch (MissingMemberException)
        {
            // Without the flag the loader's own check cannot be mirrored either; not adding a second TLS layer is the safe side.
            return true;
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_IsTls")]
    private static extern bool GetIsTls(ListenOptions listenOptions);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_EndpointConfigurations")]
    private static extern IDictionary<string, Action<EndpointConfiguration>> GetEndpointConfigurations(KestrelConfigurationLoader loader);
}
