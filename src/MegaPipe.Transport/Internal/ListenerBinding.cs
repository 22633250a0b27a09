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
    // An accept failure was logged and no accept has succeeded since (channel thread only).
    private bool _acceptFailing;
    private readonly SyncAcceptingItem _syncAccepting;

    public ListenerBinding(MegaPipeConnectionListener owner, ChannelThread thread, MegaPipeListener listener, int partition)
    {
        _owner = owner;
        _thread = thread;
        _listener = listener;
        _partition = partition;
        _syncAccepting = new SyncAcceptingItem(this);
    }

    // The connection limit paused or resumed accepting: follow it on the channel thread.
    public void SyncAccepting() => _thread.Post(_syncAccepting);

    private void ApplyLimit(MegaPipeChannel channel)
    {
        if (_stopRequested || !_handle.IsValid || !channel.IsOpen(_handle) || _owner.Limiter is not { } limiter)
        {
            return;
        }
        bool pause = limiter.Paused;
        if (pause && !_acceptPaused)
        {
            channel.StopAccept(_handle);
        }
        else if (!pause && _acceptPaused)
        {
            channel.Accept(_handle);
        }
        _acceptPaused = pause;
    }

    private sealed class SyncAcceptingItem(ListenerBinding binding) : IChannelWorkItem
    {
        public void Execute(MegaPipeChannel channel) => binding.ApplyLimit(channel);
    }

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
                if (_owner.Limiter is { } limiter && !limiter.TryAcquire())
                {
                    // Accepted by the kernel in the race with StopAccept: refuse it.
                    MegaPipeLog.ConnectionRefused(_owner.Logger, _listener.LocalEndPoint, limiter.Max);
                    channel.SetCookie(completion.Accepted, IgnoredEvents.Instance);
                    channel.Close(completion.Accepted);
                    break;
                }
                var connection = new MegaPipeConnection(_thread, completion.Accepted, channel.GetLocalEndPoint(completion.Accepted), channel.GetRemoteEndPoint(completion.Accepted));
                connection.Features.Set<IMegaPipeChannelFeature>(_thread.FileReader);
                connection.Features.Set<IMegaPipeFileReader>(_thread.FileReader);
                connection.Limiter = _owner.Limiter;
                if (_stopRequested)
                {
                    connection.Abort(new ConnectionAbortedException("The listener is unbinding."));
                }
                else
                {
                    _owner.OnAccepted(connection);
                }
                break;
            case ChannelCommand.Accept:
                // While descriptors stay short the channel keeps retrying: warn once per episode.
                if (!_acceptFailing)
                {
                    _acceptFailing = true;
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
