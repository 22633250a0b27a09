// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// One bound endpoint: a MegaPipeListener with one accept queue per channel thread. Connections
// accepted on any channel are handed to Kestrel through AcceptAsync.
internal sealed class MegaPipeConnectionListener : IConnectionListener
{
    private readonly MegaPipeTransportOptions _options;
    private readonly ILogger _logger;
    private readonly IMemoryPoolFactory<byte>? _memoryPoolFactory;
    private readonly Channel<MegaPipeConnection> _accepted = System.Threading.Channels.Channel.CreateUnbounded<MegaPipeConnection>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
    private ChannelThread[] _threads = [];
    private ListenerBinding[] _bindings = [];
    private MegaPipeListener? _listener;
    private int _unbound;
    private int _disposed;

    public MegaPipeConnectionListener(EndPoint endpoint, MegaPipeTransportOptions options, ILogger logger, IMemoryPoolFactory<byte>? memoryPoolFactory)
    {
        EndPoint = endpoint;
        _options = options;
        if (options.MaxConnections is long max)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(max, 1, "MegaPipeTransportOptions.MaxConnections");
            Limiter = new ConnectionLimiter(max);
            Limiter.PausedChanged += OnLimitChanged;
        }
        _logger = logger;
        _memoryPoolFactory = memoryPoolFactory;
    }

    public EndPoint EndPoint { get; private set; }

    public void Bind()
    {
        int channels = Math.Max(1, _options.ChannelCount);
        _listener = MegaPipeListener.Bind(EndPoint, channels, new ListenerOptions
        {
            Partitioned = _options.Partitioning,
            Backlog = _options.Backlog,
            NoDelay = _options.NoDelay,
        });
        EndPoint = _listener.LocalEndPoint;
        _threads = new ChannelThread[channels];
        _bindings = new ListenerBinding[channels];
        for (int i = 0; i < channels; i++)
        {
            _threads[i] = new ChannelThread(i, _options, _logger, _memoryPoolFactory);
            // Channel creation errors (io_uring blocked, say) surface here, on the binding thread.
            _threads[i].StartAsync().GetAwaiter().GetResult();
            _bindings[i] = new ListenerBinding(this, _threads[i], _listener, i);
        }
        foreach (ListenerBinding binding in _bindings)
        {
            binding.Start();
        }
        foreach (ListenerBinding binding in _bindings)
        {
            binding.Registered.GetAwaiter().GetResult();
        }
        MegaPipeLog.Listening(_logger, EndPoint, channels, _options.Batching, _listener.IsPartitioned, _options.LightweightSockets, _options.UnsafeInlineScheduling);
    }

    internal ILogger Logger => _logger;

    // MaxConnections, or null.
    internal ConnectionLimiter? Limiter { get; }

    // The engine of the channels and why (from the first channel; all are created alike).
    internal ChannelEngine Engine => _threads[0].Channel.Engine;
    internal string EngineReason => _threads[0].Channel.EngineReason;
    internal string? EngineDegradation => _threads[0].Channel.Degradation;

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

    internal void OnAccepted(MegaPipeConnection connection)
    {
        if (!_accepted.Writer.TryWrite(connection))
        {
            connection.Abort(new ConnectionAbortedException("The listener is unbinding."));
            _ = connection.DisposeAsync().AsTask();
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _accepted.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_accepted.Reader.TryRead(out MegaPipeConnection? connection))
                {
                    return connection;
                }
            }
        }
        catch (ChannelClosedException)
        {
        }
        return null;
    }

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
        _accepted.Writer.TryComplete();
        // Connections accepted but never taken by Kestrel are aborted, not leaked.
        while (_accepted.Reader.TryRead(out MegaPipeConnection? orphan))
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
            _listener?.Dispose();
            _accepted.Writer.TryComplete();
        }
        foreach (ChannelThread thread in _threads)
        {
            thread.RequestStop();
        }
        foreach (ChannelThread thread in _threads)
        {
            await thread.Stopped.ConfigureAwait(false);
        }
    }
}
