// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Net.Sockets;
using MegaPipe.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// One bound endpoint: a MegaPipeListener whose accept queues are registered in every channel of
// the transport's channel set (one queue per channel when partitioned). Connections accepted on
// any channel are handed to Kestrel through AcceptAsync.
internal sealed class MegaPipeConnectionListener : IConnectionListener
{
    private readonly MegaPipeTransportOptions _options;
    private readonly ILogger _logger;
    private readonly ChannelGroup _group;
    private readonly MegaPipeTransportFactory _factory;
    // Ready connections on their way to Kestrel's accept loop.
    private readonly AcceptQueue<MegaPipeConnection> _accepted = new();
    private ListenerBinding[] _bindings = [];
    private MegaPipeListener? _listener;
    private int _unbound;
    private int _disposed;

    public MegaPipeConnectionListener(EndPoint endpoint, MegaPipeTransportOptions options, ILogger logger, ChannelGroup group, MegaPipeTransportFactory factory)
    {
        EndPoint = endpoint;
        _options = options;
        _group = group;
        _factory = factory;
        if (options.MaxConnections is long max)
        {
            Limiter = new ConnectionLimiter(max);
            Limiter.PausedChanged += OnLimitChanged;
        }
        _logger = logger;
    }

    public EndPoint EndPoint { get; private set; }

    // TLS terminated on the channels for this endpoint (UseMegaPipeHttps), or null for plain connections.
    internal (MegaPipeHttpsEndpoint Endpoint, TlsServerContext Context)? Https { get; init; }

    // One accept queue registration per channel (for metrics).
    internal IReadOnlyList<ListenerBinding> Bindings => _bindings;

    public void Bind()
    {
        IReadOnlyList<ChannelThread> threads = _group.Threads;
        if (EndPoint is FileHandleEndPoint inherited)
        {
            // systemd socket activation or ListenHandle: a socket bound (and usually listening)
            // before we started. It is one accept queue, registered in every channel.
            var socket = new Socket(new SafeSocketHandle((IntPtr)(long)inherited.FileHandle, ownsHandle: true));
            try
            {
                _listener = MegaPipeListener.Adopt(socket, _options.Backlog);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        else
        {
            _listener = MegaPipeListener.Bind(EndPoint, threads.Count, new ListenerOptions
            {
                Partitioned = _options.Partitioning,
                Backlog = _options.Backlog,
                NoDelay = _options.NoDelay,
            });
        }
        EndPoint = _listener.LocalEndPoint;
        var bindings = new ListenerBinding[threads.Count];
        for (int i = 0; i < threads.Count; i++)
        {
            bindings[i] = new ListenerBinding(this, threads[i], _listener, i);
        }
        _bindings = bindings;
        foreach (ListenerBinding binding in bindings)
        {
            binding.Start();
        }
        foreach (ListenerBinding binding in bindings)
        {
            binding.Registered.GetAwaiter().GetResult();
        }
        MegaPipeLog.Listening(_logger, EndPoint, threads.Count == 1 ? "1 channel" : $"{threads.Count} channels", _group.Engine == ChannelEngine.Epoll ? "epoll" : "io_uring", _options.Batching,
            DescribePartitioning(_listener, threads.Count), DescribeLightweightSockets(), _options.UnsafeInlineScheduling);
    }

    // What the Listening line says of partitioning: on, or off and why.
    private string DescribePartitioning(MegaPipeListener listener, int channels) => listener switch
    {
        { IsPartitioned: true } => $"on ({listener.QueueCount} CPU-steered accept queues)",
        { IsInherited: true } => "off (an inherited socket is one accept queue, shared by every channel)",
        _ when !_options.Partitioning => "off (MegaPipe:Partitioning is false)",
        _ when channels == 1 => "off (one channel)",
        _ when listener.LocalEndPoint is UnixDomainSocketEndPoint => "off (a Unix domain socket has one accept queue)",
        _ => "off",
    };

    private string DescribeLightweightSockets() => _options.LightweightSockets switch
    {
        false => "off (MegaPipe:LightweightSockets is false)",
        true when _group.Engine == ChannelEngine.Epoll => "emulated with regular descriptors (epoll engine)",
        true => "on",
    };

    internal ILogger Logger => _logger;

    // MaxConnections, or null.
    internal ConnectionLimiter? Limiter { get; }

    private void OnLimitChanged()
    {
        if (Limiter!.Paused)
        {
            MegaPipeLog.ConnectionLimitReached(_logger, Limiter.Max, EndPoint);
        }
        foreach (ListenerBinding binding in _bindings)
        {
            binding.SyncAccepting();
        }
    }

    // A channel thread hands a connection to Kestrel; when Kestrel's accept loop is waiting, the
    // loop runs here, inline (it records the connection and queues it to the thread pool).
    internal void OnAccepted(MegaPipeConnection connection)
    {
        if (!_accepted.TryAdd(connection))
        {
            connection.Abort(new ConnectionAbortedException("The listener is unbinding."));
            _ = connection.DisposeAsync().AsTask();
        }
    }

    public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default) => _accepted.AcceptAsync(cancellationToken);

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _unbound, 1) != 0)
        {
            return;
        }
        foreach (ListenerBinding binding in _bindings)
        {
            binding.Stop();
        }
        foreach (ListenerBinding binding in _bindings)
        {
            await binding.Closed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        _listener?.Dispose();
        // Connections accepted but never taken by Kestrel are aborted, not leaked.
        foreach (MegaPipeConnection orphan in _accepted.Complete())
        {
            orphan.Abort(new ConnectionAbortedException("The listener was unbound before the connection was taken."));
            await orphan.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_bindings.Length > 0 && _bindings.All(b => b.IsStarted))
        {
            await UnbindAsync().ConfigureAwait(false);
        }
        else
        {
            // Bind failed part way: close what was registered, then the sockets.
            foreach (ListenerBinding binding in _bindings.Where(b => b.IsStarted))
            {
                binding.Stop();
                await binding.Closed.ConfigureAwait(false);
            }
            _listener?.Dispose();
            _accepted.Complete();
        }
        // The last listener of the factory stops the channel set once its connections have drained.
        await _factory.ReleaseGroupAsync(_group, this).ConfigureAwait(false);
    }
}
