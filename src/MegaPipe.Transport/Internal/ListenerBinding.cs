// Licensed under the MIT License. See LICENSE in the repository root.

using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.Internal;

// One channel's accept queue of a listener: registered and armed on the channel thread, it turns
// accept completions into connections.
internal sealed class ListenerBinding : IChannelWorkItem, IChannelEventHandler
{
    private readonly MegaPipeConnectionListener _owner;
    private readonly ChannelThread _thread;
    private readonly MegaPipeListener _listener;
    private readonly int _partition;
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MegaPipeHandle _handle;
    // Set by Stop (any thread); the next Execute closes the handle.
    private volatile bool _stopRequested;
    // Accepting is stopped for the connection limit (channel thread only).
    private bool _acceptPaused;
    // Connections accepted past the limit, waiting unread for a slot (channel thread only).
    private readonly Queue<MegaPipeHandle> _deferred = new();
    // An accept failure was logged and no accept has succeeded since (channel thread only).
    private bool _acceptFailing;
    private readonly SyncAcceptingItem _syncAccepting;
    // Times accepting paused: descriptors ran out (first failure of each episode), or the
    // connection limit was reached (written on the channel thread, read by metrics).
    private long _descriptorPauses;
    private long _connectionLimitPauses;

    public ListenerBinding(MegaPipeConnectionListener owner, ChannelThread thread, MegaPipeListener listener, int partition)
    {
        _owner = owner;
        _thread = thread;
        _listener = listener;
        _partition = partition;
        _syncAccepting = new SyncAcceptingItem(this);
    }

    // The connection limit paused or resumed accepting: follow it on the channel thread.
    // Any thread (Kestrel disposing a connection): after shutdown the channel may be gone, and
    // then there is nothing left to pause or resume.
    public void SyncAccepting()
    {
        try
        {
            _thread.Post(_syncAccepting);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void ApplyLimit(MegaPipeChannel channel)
    {
        if (_owner.Limiter is not { } limiter)
        {
            return;
        }
        DrainDeferred(channel);
        if (_stopRequested || !_handle.IsValid || !channel.IsOpen(_handle))
        {
            return;
        }
        bool pause = limiter.Paused;
        if (pause && !_acceptPaused)
        {
            channel.StopAccept(_handle);
            Volatile.Write(ref _connectionLimitPauses, _connectionLimitPauses + 1);
        }
        else if (!pause && _acceptPaused)
        {
            channel.Accept(_handle);
        }
        _acceptPaused = pause;
    }

    // Hands an accepted handle to Kestrel as a connection (its limit slot already taken).
    private void StartConnection(MegaPipeChannel channel, MegaPipeHandle accepted)
    {
        var connection = new MegaPipeConnection(_thread, accepted, channel.GetLocalEndPoint(accepted), channel.GetRemoteEndPoint(accepted));
        connection.Features.Set<IMegaPipeChannelFeature>(_thread.FileReader);
        connection.Features.Set<IMegaPipeFileReader>(_thread.FileReader);
        connection.Limiter = _owner.Limiter;
        connection.Listener = _owner;
        connection.Binding = this;
        Volatile.Write(ref _liveConnections, _liveConnections + 1);
        if (_stopRequested)
        {
            connection.Abort(new ConnectionAbortedException("The listener is unbinding."));
            // Never handed to Kestrel, so no one else disposes it (and frees its limit slot).
            _ = connection.DisposeAsync().AsTask();
        }
        else if (_owner.Https is { } https)
        {
            // HTTPS on the channel: to Kestrel when its handshake completes (MegaPipeConnection.Tls.cs).
            connection.StartTls(https.Endpoint, https.Context);
        }
        else
        {
            // To Kestrel after one dispatch turn, with the request it came with (see ChannelThread).
            _thread.HandOffAfterTurn(connection);
        }
    }

    // Starts held connections while the limit allows; on unbind closes them.
    private void DrainDeferred(MegaPipeChannel channel)
    {
        while (_deferred.Count > 0)
        {
            MegaPipeHandle accepted = _deferred.Peek();
            if (!channel.IsOpen(accepted))
            {
                _deferred.Dequeue();
                continue;
            }
            if (_stopRequested)
            {
                _deferred.Dequeue();
                channel.Close(accepted);
                continue;
            }
            if (!_owner.Limiter!.TryAcquire())
            {
                return;
            }
            _deferred.Dequeue();
            StartConnection(channel, accepted);
        }
    }

    private sealed class SyncAcceptingItem(ListenerBinding binding) : IChannelWorkItem
    {
        public void Execute(MegaPipeChannel channel) => binding.ApplyLimit(channel);
    }

    public ChannelThread Thread => _thread;

    // Connections this accept queue started that have not closed yet (channel thread; read by metrics).
    private long _liveConnections;
    public long LiveConnections => Volatile.Read(ref _liveConnections);

    // A connection of this accept queue closed (channel thread).
    public void OnConnectionClosed() => Volatile.Write(ref _liveConnections, _liveConnections - 1);
    public long DescriptorPauses => Volatile.Read(ref _descriptorPauses);
    public long ConnectionLimitPauses => Volatile.Read(ref _connectionLimitPauses);

    public Task Registered => _registered.Task;
    public Task Closed => _closed.Task;
    public bool IsStarted { get; private set; }

    public void Start()
    {
        IsStarted = true;
        _thread.Post(this);
    }

    public void Stop()
    {
        _stopRequested = true;
        _thread.Post(this);
    }

    public void Execute(MegaPipeChannel channel)
    {
        if (!_handle.IsValid && !_stopRequested)
        {
            try
            {
                _handle = channel.RegisterListener(_listener, _partition, this);
                _thread.Registrations++;
                channel.Accept(_handle);
                ApplyLimit(channel);
                _registered.TrySetResult();
            }
            catch (Exception e)
            {
                _registered.TrySetException(e);
                _closed.TrySetResult();
            }
            return;
        }
        if (_stopRequested)
        {
            if (_deferred.Count > 0)
            {
                DrainDeferred(channel);
            }
            if (_handle.IsValid && channel.IsOpen(_handle))
            {
                channel.Close(_handle);
            }
            else if (!_handle.IsValid)
            {
                _registered.TrySetResult();
                _closed.TrySetResult();
            }
        }
    }

    public void OnCompletion(in CompletionEvent completion)
    {
        switch (completion.Command)
        {
            case ChannelCommand.Accept when completion.Succeeded:
                _acceptFailing = false;
                MegaPipeChannel channel = _thread.Channel;
                if (_owner.Limiter is { } limiter && (_deferred.Count > 0 || !limiter.TryAcquire()))
                {
                    // Accepted by the kernel in the race with StopAccept (an accept was already
                    // armed): hold it, unread, until the limit allows it; at most AcceptDepth wait.
                    channel.SetCookie(completion.Accepted, IgnoredEvents.Instance);
                    _deferred.Enqueue(completion.Accepted);
                    MegaPipeLog.ConnectionDeferred(_owner.Logger, _listener.LocalEndPoint, limiter.Max);
                    break;
                }
                StartConnection(channel, completion.Accepted);
                break;
            case ChannelCommand.Accept:
                // While descriptors stay short the channel keeps retrying: warn once per episode.
                if (!_acceptFailing)
                {
                    _acceptFailing = true;
                    if (completion.Error is Errno.EMFILE or Errno.ENFILE or Errno.ENOBUFS or Errno.ENOMEM)
                    {
                        Volatile.Write(ref _descriptorPauses, _descriptorPauses + 1);
                    }
                    MegaPipeLog.AcceptFailed(_owner.Logger, _listener.LocalEndPoint, completion.Error);
                }
                else
                {
                    MegaPipeLog.AcceptStillFailing(_owner.Logger, _listener.LocalEndPoint, completion.Error);
                }
                break;
            case ChannelCommand.Close:
                _thread.Registrations--;
                _closed.TrySetResult();
                break;
        }
    }

    // The cookie of a refused connection: its Close event needs no handling.
    private sealed class IgnoredEvents : IChannelEventHandler
    {
        public static readonly IgnoredEvents Instance = new();

        public void OnCompletion(in CompletionEvent completion)
        {
        }
    }
}
