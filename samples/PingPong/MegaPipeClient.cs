using System.Diagnostics;
using System.Globalization;
using System.Net;
using MegaPipe;

namespace PingPong;

public readonly record struct ClientResult(long Transactions, double Seconds, long Errors, long Connections, double ClientCpuSeconds)
{
    public double TransactionsPerSecond => Transactions / Seconds;

    public string ToJson() => string.Create(CultureInfo.InvariantCulture,
        $"{{\"transactions\":{Transactions},\"seconds\":{Seconds:F3},\"tps\":{TransactionsPerSecond:F0},\"errors\":{Errors},\"connections\":{Connections},\"clientCpuSeconds\":{ClientCpuSeconds:F3}}}");
}

// A load generator on MegaPipe.Core itself (so it is at least as efficient as the server):
// each connection sends a message, waits for its echo, and repeats; with --transactions T it
// reconnects after T round trips (the paper's connection-length experiment).
public sealed class MegaPipeClient(PingPongOptions options)
{
    private long _transactions;
    private long _errors;
    private long _connections;
    private volatile bool _stop;

    public ClientResult Run()
    {
        var remote = new IPEndPoint(IPAddress.Parse(options.Host), options.Port);
        var threads = new Thread[Math.Max(1, options.Threads)];
        double cpuBefore = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var watch = Stopwatch.StartNew();
        for (int t = 0; t < threads.Length; t++)
        {
            int share = options.Connections / threads.Length + (t < options.Connections % threads.Length ? 1 : 0);
            int index = t;
            threads[t] = new Thread(() => Loop(remote, share, index)) { IsBackground = true };
            threads[t].Start();
        }
        Thread.Sleep(TimeSpan.FromSeconds(options.Duration));
        long transactions = Interlocked.Read(ref _transactions);
        double seconds = watch.Elapsed.TotalSeconds;
        _stop = true;
        double cpu = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpuBefore;
        foreach (Thread thread in threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }
        return new ClientResult(transactions, seconds, Interlocked.Read(ref _errors), Interlocked.Read(ref _connections), cpu);
    }

    private sealed class Connection(int size)
    {
        public MegaPipeHandle Handle;
        public readonly NativeBuffer Send = Fill(new NativeBuffer(size));
        public readonly NativeBuffer Receive = new(size);
        public int Received;
        public int Done;

        private static NativeBuffer Fill(NativeBuffer b)
        {
            b.GetSpan().Fill((byte)'x');
            return b;
        }
    }

    private void Loop(IPEndPoint remote, int connections, int index)
    {
        int cpu = options.FirstCpu >= 0 ? options.FirstCpu + index : -1;
        using MegaPipeChannel ch = MegaPipeChannel.Create(new ChannelOptions { PinToCpu = cpu });
        int size = options.Size;
        for (int i = 0; i < connections; i++)
        {
            var c = new Connection(size);
            c.Handle = ch.Connect(remote, c);
        }
        var events = new CompletionEvent[256];
        long local = 0;
        while (!_stop)
        {
            int n = ch.Dispatch(events, TimeSpan.FromMilliseconds(100));
            for (int i = 0; i < n; i++)
            {
                ref CompletionEvent ev = ref events[i];
                var c = (Connection)ev.Cookie!;
                switch (ev.Command)
                {
                    case ChannelCommand.Connect when ev.Succeeded:
                        Interlocked.Increment(ref _connections);
                        ch.Write(c.Handle, c.Send.Memory);
                        break;
                    case ChannelCommand.Write when ev.Succeeded:
                        c.Received = 0;
                        ch.Read(c.Handle, c.Receive.Memory);
                        break;
                    case ChannelCommand.Read when ev.Result > 0:
                        c.Received += ev.Result;
                        if (c.Received < size)
                        {
                            ch.Read(c.Handle, c.Receive.Memory.Slice(c.Received));
                            break;
                        }
                        local++;
                        if ((local & 63) == 0)
                        {
                            Interlocked.Add(ref _transactions, 64);
                        }
                        if (options.Transactions > 0 && ++c.Done == options.Transactions)
                        {
                            ch.Close(c.Handle); // reconnect after the close completes
                            break;
                        }
                        ch.Write(c.Handle, c.Send.Memory);
                        break;
                    case ChannelCommand.Close:
                        ((IDisposable)c.Send).Dispose();
                        ((IDisposable)c.Receive).Dispose();
                        if (!_stop)
                        {
                            var next = new Connection(size);
                            next.Handle = ch.Connect(remote, next);
                        }
                        break;
                    case ChannelCommand.Connect:
                    case ChannelCommand.Write:
                    case ChannelCommand.Read:
                        Interlocked.Increment(ref _errors);
                        ch.Close(c.Handle);
                        break;
                }
            }
        }
        Interlocked.Add(ref _transactions, local & 63);
    }
}
