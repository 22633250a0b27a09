// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// One MegaPipe channel and the thread that owns it: dispatches completions to their handlers and
// runs work other threads post (output ready, resume reading, abort).
internal sealed class ChannelThread
{
    // The name its thread runs under; Linux shows at most 15 characters of it (/proc/PID/task/TID/comm).
    public const string ThreadNamePrefix = "MegaPipe ch ";

    private readonly Thread _thread;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MegaPipeChannel? _channel;
    // Set by RequestStop; the loop ends once no handle of ours is left.
    private volatile bool _stopRequested;

    public ChannelThread(int index, MegaPipeTransportOptions options, ILogger logger, IMemoryPoolFactory<byte>? memoryPoolFactory)
    {
        Index = index;
        Options = options;
        Logger = logger;
        MemoryPool = memoryPoolFactory?.Create(new MemoryPoolOptions { Owner = "MegaPipe" }) ?? MemoryPool<byte>.Shared;
        // The pipes of every connection on this channel share their options (PipeOptions is immutable).
        PipeScheduler applicationScheduler = options.UnsafeInlineScheduling ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        long maxRead = options.MaxReadBufferSize > 0 ? options.MaxReadBufferSize : 0;
        long maxWrite = options.MaxWriteBufferSize > 0 ? options.MaxWriteBufferSize : 0;
        // Input: the channel writes, the application reads (on the thread pool unless inline).
        InputPipeOptions = new PipeOptions(MemoryPool, applicationScheduler, PipeScheduler.Inline, maxRead, maxRead / 2, useSynchronizationContext: false);
        // Output: the application writes. The reader callback only posts to the channel: inline when the application
        // runs on the channel anyway; otherwise queued behind the application's current work item, so a burst of
        // flushes (pipelined responses) reaches the channel as one send rather than one wake-up each.
        OutputPipeOptions = new PipeOptions(MemoryPool, applicationScheduler, applicationScheduler, maxWrite, maxWrite / 2, useSynchronizationContext: false);
        _thread = new Thread(Run) { IsBackground = true, Name = ThreadNamePrefix + index.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        FileReader = new ChannelFileReader(this);
        Handshakes = new HandshakeScheduler(options.HandshakeTurnBudget);
    }

    public int Index { get; }
    public MegaPipeTransportOptions Options { get; }
    public ILogger Logger { get; }
    public MemoryPool<byte> MemoryPool { get; }
    public PipeOptions InputPipeOptions { get; }
    public PipeOptions OutputPipeOptions { get; }
    // File reads through this channel: the IMegaPipeFileReader / IMegaPipeChannelFeature of its connections.
    public ChannelFileReader FileReader { get; }
    // TLS on this channel (channel thread only): the ciphertext buffers of sends in flight, the deadlines of
    // handshakes and of idle trims (checked by this loop; no timer per connection), the handshakes' share of a turn.
    public TlsSendBuffers TlsSendBuffers { get; } = new();
    public TlsDeadlines TlsDeadlines { get; } = new();
    public TlsHandshakeCounters TlsHandshakes { get; } = new();
    public HandshakeScheduler Handshakes { get; }
    public MegaPipeChannel Channel => _channel!;
    // Live connections and listener registrations on this channel (written on the channel thread only).
    public int Registrations { get; set; }
    // Live connections on this channel (written on the channel thread, read by metrics).
    private int _liveConnections;
    public long LiveConnections => Volatile.Read(ref _liveConnections);
    public ChannelCounters Counters => _channel?.Counters ?? default;
    // Live handles, registered-file slots in use and free receive buffers (approximate when read off the channel thread).
    public long Handles => _channel?.HandleCount ?? 0;
    public long RegisteredFiles => _channel?.RegisteredFilesInUse ?? 0;
    public long ReceiveBuffersAvailable => _channel?.ReceiveBuffersAvailable ?? 0;
    // Loop turns: Dispatch calls returned (written on the channel thread, read anywhere).
    private long _dispatchCount;
    public long DispatchCount => Volatile.Read(ref _dispatchCount);

    public void OnConnectionOpened()
    {
        Registrations++;
        Volatile.Write(ref _liveConnections, _liveConnections + 1);
    }

    public void OnConnectionClosed()
    {
        Registrations--;
        Volatile.Write(ref _liveConnections, _liveConnections - 1);
    }

    public Task StartAsync()
    {
        _thread.Start();
        return _started.Task;
    }

    public Task Stopped => _stopped.Task;

    // Between the channel's creation and its disposal (read by metrics from any thread).
    private bool _running;
    public bool IsRunning => Volatile.Read(ref _running);

    // "io_uring" or "epoll", once the channel is created (a tag of every metric).
    public string EngineName { get; private set; } = "";

    public void Post(IChannelWorkItem item) => _channel!.Post(item);

    public void RequestStop()
    {
        _stopRequested = true;
        if (_channel is { } channel)
        {
            channel.Post(WakeItem.Instance);
        }
    }

    private void Run()
    {
        MegaPipeChannel channel;
        try
        {
            // Channel i on the i-th CPU the process may use (not CPU id i: under taskset the ids need not start at 0).
            int[] allowed = Options.PinChannelThreads ? MegaPipeChannel.AllowedCpus() : [];
            int cpu = allowed.Length > 0 ? allowed[Index % allowed.Length] : -1;
            channel = _channel = MegaPipeChannel.Create(Options.CreateChannelOptions(cpu));
        }
        catch (Exception e)
        {
            _started.SetException(e);
            _stopped.SetResult();
            return;
        }
        // The epoll engine's emulations are logged once per listener with the engine choice.
        if (channel.Engine == ChannelEngine.IoUring && channel.Degradation is { } degradation)
        {
            MegaPipeLog.ChannelDegraded(Logger, Index, degradation);
        }
        EngineName = channel.Engine == ChannelEngine.Epoll ? "epoll" : "io_uring";
        Volatile.Write(ref _running, true);
        _started.SetResult();

        var events = new CompletionEvent[512];
        try
        {
            while (!_stopRequested || Registrations > 0)
            {
                // Connections waiting for their hand-off turn: this turn only collects what is
                // ready, without waiting, so they reach Kestrel right after it.
                int handOffsDue = _handOffs.Count;
                TimeSpan wait = handOffsDue > 0 || Handshakes.HasWaiting ? TimeSpan.Zero : _stopRequested ? TimeSpan.FromMilliseconds(100) : Timeout.InfiniteTimeSpan;
                if (TlsDeadlines.Count > 0)
                {
                    wait = CapAtNextHandshakeDeadline(wait);
                }
                int count = channel.Dispatch(events, wait);
                // A new turn, counted before its events are handled: data they put in a connection's
                // input pipe is read by the application only once the count includes this turn.
                Volatile.Write(ref _dispatchCount, _dispatchCount + 1);
                Handshakes.BeginTurn();
                for (int i = 0; i < count; i++)
                {
                    ((IChannelEventHandler)events[i].Cookie!).OnCompletion(in events[i]);
                    events[i] = default;
                }
                if (handOffsDue > 0)
                {
                    HandOffDue(handOffsDue);
                }
                if (Handshakes.HasWaiting)
                {
                    // TLS handshake steps held back by earlier turns' budgets, after this turn's own events.
                    Handshakes.RunWaiting();
                }
                if (TlsDeadlines.Count > 0)
                {
                    ExpireHandshakes();
                }
            }
            Volatile.Write(ref _running, false);
            channel.Dispose();
        }
        catch (Exception e)
        {
            // The ring's state is unknown after an exception on its thread: stop the process rather
            // than leave connections hanging or corrupt memory the kernel still writes to.
            MegaPipeLog.ChannelFailed(Logger, Index, e);
            Environment.FailFast($"MegaPipe channel {Index} failed: {e}", e);
        }
        _stopped.SetResult();
    }

    // New connections go to Kestrel one dispatch turn after they were accepted (channel thread only):
    // the turn submits their first receive, and a client that sent its request with the
    // connection (an HTTP client does) has it in the input pipe by then, so Kestrel's first read
    // completes at once on the thread-pool thread that runs the connection, instead of waiting and
    // costing another thread hop when the data comes. A silent client, or a protocol where the
    // server speaks first, still reaches Kestrel after that one turn: nothing waits for data.
    private readonly List<MegaPipeConnection> _handOffs = new();

    public void HandOffAfterTurn(MegaPipeConnection connection)
    {
        Debug.Assert(Channel.IsOwnerThread, "hand-offs are queued on the channel thread");
        _handOffs.Add(connection);
    }

    // Hands over the connections queued before the turn that just ended (later ones wait for theirs).
    private void HandOffDue(int due)
    {
        for (int i = 0; i < due; i++)
        {
            MegaPipeConnection connection = _handOffs[i];
            _handOffs[i] = null!;
            connection.HandOff();
        }
        _handOffs.RemoveRange(0, due);
    }

    // The loop sleeps no longer than until the next TLS deadline (a handshake timeout, an idle trim).
    private TimeSpan CapAtNextHandshakeDeadline(TimeSpan wait)
    {
        TimeSpan untilDeadline = TlsDeadlines.TimeUntilNext(Environment.TickCount64);
        return wait == Timeout.InfiniteTimeSpan || untilDeadline < wait ? untilDeadline : wait;
    }

    // TLS deadlines that passed fire; when the channel is stopping, every unfinished handshake ends.
    private void ExpireHandshakes()
    {
        if (_stopRequested)
        {
            TlsDeadlines.AbandonAll();
        }
        else
        {
            TlsDeadlines.ExpireDue(Environment.TickCount64);
        }
    }

    private sealed class WakeItem : IChannelWorkItem
    {
        public static readonly WakeItem Instance = new();

        public void Execute(MegaPipeChannel channel)
        {
        }
    }
}
