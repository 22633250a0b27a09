// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Net.Sockets;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MegaPipe.Transport;

/// <summary>Creates MegaPipe listeners for Kestrel.</summary>
public sealed class MegaPipeTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly MegaPipeTransportOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly IMemoryPoolFactory<byte>? _memoryPoolFactory;
    // The engine choice is logged once, with the first listener.
    private int _engineLogged;

    /// <summary>Creates the factory (normally through dependency injection).</summary>
    public MegaPipeTransportFactory(IOptions<MegaPipeTransportOptions> options, ILoggerFactory loggerFactory, IMemoryPoolFactory<byte>? memoryPoolFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Value;
        _loggerFactory = loggerFactory;
        _memoryPoolFactory = memoryPoolFactory;
    }

    /// <summary>IP and Unix domain socket endpoints.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;

    /// <inheritdoc/>
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!CanBind(endpoint))
        {
            throw new NotSupportedException($"The MegaPipe transport cannot bind {endpoint.GetType().Name} endpoints; register another transport for them.");
        }
        ILogger logger = _loggerFactory.CreateLogger("MegaPipe.Transport");
        var listener = new MegaPipeConnectionListener(endpoint, _options, logger, _memoryPoolFactory);
        try
        {
            listener.Bind();
            if (Interlocked.Exchange(ref _engineLogged, 1) == 0)
            {
                if (listener.Engine == ChannelEngine.Epoll)
                {
                    MegaPipeLog.EngineEpoll(logger, listener.EngineDegradation ?? listener.EngineReason);
                }
                else
                {
                    MegaPipeLog.EngineIoUring(logger, listener.EngineReason);
                }
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            listener.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw new AddressInUseException(e.Message, e);
        }
        catch
        {
            listener.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
        return new ValueTask<IConnectionListener>(listener);
    }
}
