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

    public ListenerBinding(MegaPipeConnectionListener owner, ChannelThread thread, MegaPipeListener listener, int partition)
    {
        _owner = owner;
        _thread = thread;
        _listener = listener;
        _partition = partition;
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
                MegaPipeChannel channel = _thread.Channel;
                var connection = new MegaPipeConnection(_thread, completion.Accepted, channel.GetLocalEndPoint(completion.Accepted), channel.GetRemoteEndPoint(completion.Accepted));
                connection.Features.Set<IMegaPipeChannelFeature>(_thread.FileReader);
                connection.Features.Set<IMegaPipeFileReader>(_thread.FileReader);
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
                MegaPipeLog.AcceptFailed(_owner.Logger, _listener.LocalEndPoint, completion.Error);
                break;
            case ChannelCommand.Close:
                _thread.Registrations--;
                _closed.TrySetResult();
                break;
        }
    }
}
