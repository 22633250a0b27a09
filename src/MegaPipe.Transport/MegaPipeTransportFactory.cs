// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using MegaPipe.Tls;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MegaPipe.Transport;

/// <summary>Creates MegaPipe listeners for Kestrel.</summary>
public sealed class MegaPipeTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable
{
    private readonly MegaPipeTransportOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly IMemoryPoolFactory<byte>? _memoryPoolFactory;
    // Guards _group and its listener count.
    private readonly object _gate = new();
    // The channel set every listener of this factory registers in; null until the first bind and
    // after the last listener is disposed.
    private ChannelGroup? _group;
    // Listeners bound and not yet disposed (guarded by _gate; read by metrics).
    private readonly List<MegaPipeConnectionListener> _listeners = new();
    // The engine choice is logged once, with the first channel set.
    private int _engineLogged;
    private readonly MegaPipeMetrics _metrics;

    // Endpoints set up with UseMegaPipeHttps (null when the factory was made without UseMegaPipe: no TLS on the channels).
    private readonly HttpsEndpointRegistry? _https;

    /// <summary>Creates the factory (normally through dependency injection).</summary>
    public MegaPipeTransportFactory(IOptions<MegaPipeTransportOptions> options, ILoggerFactory loggerFactory, IMemoryPoolFactory<byte>? memoryPoolFactory = null, IMeterFactory? meterFactory = null)
        : this(options, loggerFactory, memoryPoolFactory, meterFactory, https: null)
    {
    }

    internal MegaPipeTransportFactory(IOptions<MegaPipeTransportOptions> options, ILoggerFactory loggerFactory, IMemoryPoolFactory<byte>? memoryPoolFactory, IMeterFactory? meterFactory, HttpsEndpointRegistry? https)
    {
        _https = https;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Value;
        MegaPipeTransportOptionsValidator.ThrowIfInvalid(_options);
        _loggerFactory = loggerFactory;
        _memoryPoolFactory = memoryPoolFactory;
        _metrics = new MegaPipeMetrics(this, meterFactory);
    }

    /// <summary>Disposes the transport's meter (the host disposes the factory when it stops).</summary>
    public void Dispose() => _metrics.Dispose();

    /// <summary>
    /// IP and Unix domain socket endpoints, and inherited listening sockets
    /// (<see cref="FileHandleEndPoint"/>: ListenHandle, systemd socket activation) that are TCP or
    /// Unix domain stream sockets. Other endpoints are logged and left to Kestrel's next transport.
    /// </summary>
    public bool CanBind(EndPoint endpoint)
    {
        string? reason = endpoint switch
        {
            IPEndPoint or UnixDomainSocketEndPoint => null,
            FileHandleEndPoint handle => WhyNotServed(handle),
            _ => $"{endpoint.GetType().Name} endpoints are not sockets MegaPipe can listen on",
        };
        if (reason is not null)
        {
            MegaPipeLog.EndpointNotServed(_loggerFactory.CreateLogger("MegaPipe.Transport"), endpoint, reason);
        }
        return reason is null;
    }

    // Null when the inherited descriptor is a stream socket MegaPipe can accept on.
    private static string? WhyNotServed(FileHandleEndPoint endpoint)
    {
        if (endpoint.FileHandleType == FileHandleType.Pipe)
        {
            return $"descriptor {endpoint.FileHandle} is declared a pipe";
        }
        try
        {
            // A look at the descriptor only: this Socket does not own it.
            using var socket = new Socket(new SafeSocketHandle((IntPtr)(long)endpoint.FileHandle, ownsHandle: false));
            return socket.SocketType == SocketType.Stream && socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6 or AddressFamily.Unix
                ? null
                : $"descriptor {endpoint.FileHandle} is a {socket.AddressFamily} {socket.SocketType} socket, not a TCP or Unix domain stream socket";
        }
        catch (SocketException e)
        {
            return $"descriptor {endpoint.FileHandle} is not a socket ({e.SocketErrorCode})";
        }
    }

    /// <inheritdoc/>
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!CanBind(endpoint))
        {
            throw new NotSupportedException($"The MegaPipe transport cannot bind {endpoint}; register another transport for it.");
        }
        ILogger logger = _loggerFactory.CreateLogger("MegaPipe.Transport");
        // HTTPS set up with UseMegaPipeHttps: the endpoint's shared TLS context, made (and checked) before anything
        // binds; null when Kestrel's SslStream serves the endpoint.
        MegaPipeHttpsEndpoint? https = _https?.Find(endpoint);
        TlsServerContext? tls = https?.TryCreateContext();
        ChannelGroup group = AcquireGroup(logger);
        var listener = new MegaPipeConnectionListener(endpoint, _options, logger, group, this)
        {
            Https = tls is null ? null : (https!, tls),
        };
        try
        {
            listener.Bind();
            if (tls is not null)
            {
                https!.LogOnChannels(listener.EndPoint);
            }
            lock (_gate)
            {
                _listeners.Add(listener);
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

    // The running channel set, started by the first listener; the caller must give it back with
    // ReleaseGroupAsync once (MegaPipeConnectionListener.DisposeAsync).
    private ChannelGroup AcquireGroup(ILogger logger)
    {
        lock (_gate)
        {
            if (_group is null)
            {
                _group = ChannelGroup.Start(_options, logger, _memoryPoolFactory);
                if (Interlocked.Exchange(ref _engineLogged, 1) == 0)
                {
                    if (_group.Engine == ChannelEngine.Epoll)
                    {
                        MegaPipeLog.EngineEpoll(logger, _group.EngineDegradation ?? _group.EngineReason);
                    }
                    else
                    {
                        MegaPipeLog.EngineIoUring(logger, _group.EngineReason);
                    }
                }
            }
            _group.AddListener();
            return _group;
        }
    }

    // A listener is done with the channel set; the last one stops it (after its connections drain).
    internal Task ReleaseGroupAsync(ChannelGroup group, MegaPipeConnectionListener listener)
    {
        lock (_gate)
        {
            _listeners.Remove(listener);
            if (!group.RemoveListener())
            {
                return Task.CompletedTask;
            }
            if (ReferenceEquals(_group, group))
            {
                _group = null;
            }
        }
        return group.StopAsync();
    }

    // The listeners bound now (a copy, for metrics).
    internal MegaPipeConnectionListener[] Listeners
    {
        get
        {
            lock (_gate)
            {
                return _listeners.ToArray();
            }
        }
    }

    // The running channel set, if any (for tests and diagnostics).
    internal ChannelGroup? Group
    {
        get
        {
            lock (_gate)
            {
                return _group;
            }
        }
    }
}
