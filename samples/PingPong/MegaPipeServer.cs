using System.Net;
using MegaPipe;

namespace PingPong;

// The talk's ping-pong server, nearly line for line:
//   ch = mp_create(); handle = mp_register(ch, listen_sd, mask=my_cpu_id); mp_accept(handle)
//   while true: ev = mp_dispatch(ch); ACCEPT -> register + read; READ -> write; WRITE -> read; DISCONNECT -> unregister
public sealed class MegaPipeServer : IPingPongServer
{
    private readonly PingPongOptions _options;
    private readonly MegaPipeListener _listener;
    private readonly Worker[] _workers;

    public MegaPipeServer(PingPongOptions options)
    {
        _options = options;
        _listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Parse(options.Host), options.Port), options.Threads, new ListenerOptions { Partitioned = options.Partitioning });
        _workers = new Worker[options.Threads];
    }

    public EndPoint LocalEndPoint => _listener.LocalEndPoint;

    public ChannelCounters Counters
    {
        get
        {
            ChannelCounters sum = default;
            foreach (Worker w in _workers)
            {
                if (w?.Channel is { } channel)
                {
                    sum += channel.Counters;
                }
            }
            return sum;
        }
    }

    public long Transactions => _workers.Sum(w => Volatile.Read(ref w.Transactions));

    public void Start()
    {
        using var ready = new CountdownEvent(_workers.Length);
        for (int i = 0; i < _workers.Length; i++)
        {
            var worker = _workers[i] = new Worker(this, i, ready);
            new Thread(worker.Run) { IsBackground = true, Name = $"megapipe-{i}" }.Start();
        }
        ready.Wait();
    }

    private sealed class Connection(MegaPipeHandle handle, int size)
    {
        public readonly MegaPipeHandle Handle = handle;
        public readonly NativeBuffer Buffer = new(size);
    }

    private sealed class Worker(MegaPipeServer server, int index, CountdownEvent ready)
    {
        public MegaPipeChannel? Channel;
        public long Transactions;

        public void Run()
        {
            PingPongOptions o = server._options;
            int cpu = o.CpuOf(index);
            MegaPipeChannel ch = Channel = MegaPipeChannel.Create(o.ChannelOptions().Create(cpu));
            MegaPipeHandle listener = ch.RegisterListener(server._listener, index);
            ch.Accept(listener);
            ready.Signal();
            var events = new CompletionEvent[256];
            while (true)
            {
                int n = ch.Dispatch(events, Timeout.InfiniteTimeSpan);
                for (int i = 0; i < n; i++)
                {
                    ref CompletionEvent ev = ref events[i];
                    var conn = ev.Cookie as Connection;
                    switch (ev.Command)
                    {
                        case ChannelCommand.Accept when ev.Succeeded:
                            conn = new Connection(ev.Accepted, o.Size);
                            ch.SetCookie(conn.Handle, conn);
                            ch.Read(conn.Handle, conn.Buffer.Memory);
                            break;
                        case ChannelCommand.Read when ev.Result > 0:
                            ch.Write(conn!.Handle, conn.Buffer.Memory.Slice(0, ev.Result));
                            break;
                        case ChannelCommand.Read:
                            ch.Close(conn!.Handle); // end of stream or error: DISCONNECT
                            break;
                        case ChannelCommand.Write when ev.Succeeded:
                            Transactions++;
                            ch.Read(conn!.Handle, conn.Buffer.Memory);
                            break;
                        case ChannelCommand.Write:
                            ch.Close(conn!.Handle);
                            break;
                        case ChannelCommand.Close:
                            ((IDisposable)conn!.Buffer).Dispose();
                            break;
                    }
                }
            }
        }
    }
}
