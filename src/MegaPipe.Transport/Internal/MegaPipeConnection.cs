// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace MegaPipe.Transport.Internal;

// One accepted connection. Received bytes go into the input pipe; what the application flushes
// to the output pipe is sent by the owning channel, one send in flight at a time. Every field
// below "channel-thread state" is touched only on the channel thread; other threads reach the
// connection by setting a pending flag and posting it to the channel.
internal sealed partial class MegaPipeConnection : ConnectionContext, IChannelWorkItem, IChannelEventHandler, IDuplexPipe,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IMemoryPoolFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature
{
    // Pending work flags, set by any thread, consumed by Execute on the channel thread.
    private const int PendingOutput = 1;
    private const int PendingResume = 2;
    private const int PendingAbort = 4;
    private const int PendingGracefulAbort = 8;

    private static long s_lastId = DateTime.UtcNow.Ticks;

    private readonly ChannelThread _thread;
    private readonly MegaPipeChannel _channel;
    private readonly MegaPipeHandle _handle;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _closedTokenSource = new();
    private readonly TaskCompletionSource _closedTask = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _outputReadyCallback;
    private readonly Action _resumeCallback;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    // Bit set of Pending* flags not yet handled.
    private int _pending;
    // Why the connection was aborted, or null.
    private volatile ConnectionAbortedException? _abortReason;

    // ---- channel-thread state ----
    // Receiving into the input pipe: paused for backpressure, completed.
    private InputState _inputState;
    // Sending from the output pipe: the send in flight, completed.
    private OutputState _outputState;
    // The outstanding read of the output pipe.
    private ValueTask<ReadResult> _outputRead;
    // Open, closing (the close is issued to the channel), closed (its Close event came).
    private LifetimeState _lifetime;

    public MegaPipeConnection(ChannelThread thread, MegaPipeHandle handle, EndPoint? localEndPoint, EndPoint? remoteEndPoint)
    {
        Debug.Assert(thread.Channel.IsOwnerThread, "connections are created on their channel thread");
        _thread = thread;
        _channel = thread.Channel;
        _handle = handle;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        _input = new Pipe(thread.InputPipeOptions);
        _output = new Pipe(thread.OutputPipeOptions);
        _transport = this;
        _outputReadyCallback = () => SchedulePending(PendingOutput);
        _resumeCallback = () => SchedulePending(PendingResume);
        ConnectionClosed = _closedTokenSource.Token;

        InitializeFeatures();

        _channel.SetCookie(handle, this);
        _thread.OnConnectionOpened();
        _channel.Receive(handle);
        StartOutputRead();
    }

    public override string ConnectionId
    {
        get => _connectionId ??= "MP" + Interlocked.Increment(ref s_lastId).ToString("X", System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    // The connection is its own feature collection (MegaPipeConnection.Features.cs).
    public override IFeatureCollection Features => this;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    // The connection is its own duplex pipe (the input pipe's reader, the output pipe's writer);
    // middleware may replace it for the connections it wraps.
    private IDuplexPipe _transport;

    public override IDuplexPipe Transport
    {
        get => _transport;
        set => _transport = value;
    }

    PipeReader IDuplexPipe.Input => _input.Reader;

    PipeWriter IDuplexPipe.Output => _output.Writer;

    public override CancellationToken ConnectionClosed { get; set; }

    public MemoryPool<byte> MemoryPool => _thread.MemoryPool;

    // An abort with a reason resets the connection (RST). Kestrel aborts without one to close
    // gracefully, e.g. when the client half-closes (Kestrel takes a FIN for the client going away):
    // then the connection ends with FIN after what the kernel already holds, as with the Sockets transport.
    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        SchedulePending(abortReason is null ? PendingGracefulAbort : PendingAbort);
    }

    public override async ValueTask DisposeAsync()
    {
        // The transport's own pipes, whatever middleware left in Transport.
        _input.Reader.Complete();
        _output.Writer.Complete();
        await _closedTask.Task.ConfigureAwait(false);
        _closedTokenSource.Dispose();
        // The MaxConnections slot is free once the socket is closed and Kestrel is done with the
        // connection (this call), so Kestrel never holds more connections than the limit.
        if (Interlocked.Exchange(ref _limitReleased, 1) == 0)
        {
            Limiter?.Release();
        }
    }

    private int _limitReleased;

    // Any thread: remember the work and make sure the channel runs Execute once for it.
    private void SchedulePending(int flag)
    {
        if (Interlocked.Or(ref _pending, flag) == 0)
        {
            try
            {
                _thread.Post(this);
            }
            catch (ObjectDisposedException)
            {
                // The channel is disposed only once all its connections are closed, so this one is
                // too and nothing is left to do. It happens when the connection closed first (the
                // peer went away) and Kestrel completes the output later, in DisposeAsync: the
                // pending output read then calls back on the thread pool, possibly after the server
                // has stopped and the channel is gone. An exception there would kill the process.
            }
        }
    }

    public void Execute(MegaPipeChannel channel)
    {
        int pending = Interlocked.Exchange(ref _pending, 0);
        if (_lifetime.IsClosed)
        {
            return;
        }
        if ((pending & PendingAbort) != 0)
        {
            BeginClose(abortive: true);
        }
        else if ((pending & PendingGracefulAbort) != 0)
        {
            BeginClose();
        }
        if ((pending & PendingOutput) != 0)
        {
            if (ProcessOutput())
            {
                StartOutputRead();
            }
        }
        if ((pending & PendingResume) != 0)
        {
            ResumeReading();
        }
    }

    public void OnCompletion(in CompletionEvent completion)
    {
        switch (completion.Command)
        {
            case ChannelCommand.Receive:
                OnReceive(completion);
                break;
            case ChannelCommand.Write:
                OnWriteCompleted(completion);
                break;
            case ChannelCommand.Close:
                OnClosed();
                break;
        }
    }

    // Begins closing: the channel cancels the receive and any send, then closes the socket. An
    // abortive close (Abort) resets the connection, as Kestrel's Sockets transport does, so a
    // client does not take an aborted request for an orderly close and retry it.
    private void BeginClose(bool abortive = false)
    {
        if (!_lifetime.TryBeginClose())
        {
            if (abortive)
            {
                AbortPendingTlsClose();
            }
            return;
        }
        if (_tls is not null && !abortive && BeginTlsClose())
        {
            return; // close_notify (or an alert) goes first; its completion closes
        }
        // Graceful: FIN first, as the Sockets transport's Shutdown before Close: if the peer's next
        // request is already in the socket, close(2) alone would answer it with a bare RST, and
        // the peer could not tell the orderly end of a keep-alive connection from a crash.
        _channel.Close(_handle, abortive ? CloseMode.Abort : CloseMode.Graceful);
    }

    // The listener's MaxConnections, released when the connection is closed.
    public ConnectionLimiter? Limiter { get; set; }

    // The listener whose AcceptAsync hands the connection to Kestrel, and its accept queue on
    // this channel, which counts the connection until it closes.
    public MegaPipeConnectionListener? Listener { get; set; }
    public ListenerBinding? Binding { get; set; }

    // The hand-off: the connection goes to Kestrel's accept loop now (channel thread, once). A
    // plain connection is handed off one dispatch turn after its accept (ChannelThread.HandOffAfterTurn),
    // so its first request is usually in the input pipe already; a layer that must finish first
    // (a TLS handshake) calls this itself when it has. If the connection is gone by then (the peer
    // reset it), Kestrel still gets it, reads the end of the stream and disposes it, as it would
    // have without the wait.
    public void HandOff()
    {
        Debug.Assert(_channel.IsOwnerThread, "the hand-off runs on the channel thread");
        if (!_lifetime.TryHandOff())
        {
            return;
        }
        Listener!.OnAccepted(this);
    }

    private void OnClosed()
    {
        _lifetime.Closed();
        DisposeSocket();
        Binding?.OnConnectionClosed();
        _thread.OnConnectionClosed();
        CompleteInput(_abortReason);
        if (_outputState.TryComplete())
        {
            _output.Reader.Complete();
        }
        _inputState.EndPause();
        if (_tls is not null)
        {
            OnTlsClosed();
        }
        // ConnectionClosed callbacks are application code: keep them off the channel thread.
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            var connection = (MegaPipeConnection)state!;
            connection.CancelConnectionClosed();
            connection._closedTask.TrySetResult();
        }, this);
    }

    // The peer ended the receive side (FIN or reset): fire ConnectionClosed now, while sending may
    // still go on, as Kestrel's Sockets transport does. Kestrel learns of a client that went away
    // only through this token when it is not reading, e.g. while a request without a body runs.
    private void FireConnectionClosed()
    {
        if (!_lifetime.TryFirePeerGone())
        {
            return;
        }
        ThreadPool.UnsafeQueueUserWorkItem(static state => ((MegaPipeConnection)state!).CancelConnectionClosed(), this);
    }

    private void CancelConnectionClosed()
    {
        try
        {
            _closedTokenSource.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed after the Close event: the token has fired already.
        }
    }

    private void CompleteInput(Exception? error)
    {
        if (_inputState.TryComplete())
        {
            _input.Writer.Complete(error);
        }
    }

    private sealed class ConnectionItems : Dictionary<object, object?>
    {
    }
}
