using System.Diagnostics;
using System.Globalization;
using System.Net;
using MegaPipe;

namespace PingPong;

// What one run of the client measured, over its measurement window (after the warm-up).
// CpuBusy is the client's CPU time over the window divided by the CPUs it ran on: near 1, the
// client itself was saturated and the server may have had spare capacity.
public readonly record struct ClientResult(long Transactions, double Seconds, long Errors, long Connections, double ClientCpuSeconds, int Threads)
{
    public double TransactionsPerSecond => Transactions / Seconds;

    public double CpuBusy => ClientCpuSeconds / (Seconds * Math.Max(1, Threads));

    public string ToJson() => string.Create(CultureInfo.InvariantCulture,
        $"{{\"transactions\":{Transactions},\"seconds\":{Seconds:F3},\"tps\":{TransactionsPerSecond:F0},\"errors\":{Errors},\"connections\":{Connections},\"clientCpuSeconds\":{ClientCpuSeconds:F3},\"threads\":{Threads},\"cpuBusy\":{CpuBusy:F3}}}");
}

// A load generator on MegaPipe.Core itself (so it is at least as efficient as the server): one
// channel per thread, each connection sends a message, waits for its whole echo, and repeats; with
// --transactions T it closes after T round trips and connects again (the paper's
// connection-length experiment). Threads are pinned with --cpus so that the client's share of the
// machine is known. With --warmup W the first W seconds are not counted, and "measuring" is
// printed when the counted window starts, so a driver can sample the server over the same window.
public sealed class MegaPipeClient(PingPongOptions options)
{
    private long _transactions;
    private long _errors;
    private long _connections;
    private volatile bool _stop;

    public ClientResult Run(Action? measuring = null)
    {
        var remote = new IPEndPoint(IPAddress.Parse(options.Host), options.Port);
        var threads = new Thread[Math.Max(1, options.Threads)];
        for (int t = 0; t < threads.Length; t++)
        {
            int share = options.Connections / threads.Length + (t < options.Connections % threads.Length ? 1 : 0);
            int index = t;
            threads[t] = new Thread(() => Loop(remote, share, index)) { IsBackground = true, Name = $"client-{t}" };
            threads[t].Start();
        }
        if (options.Warmup > 0)
        {
            Thread.Sleep(TimeSpan.FromSeconds(options.Warmup));
        }
        long tx0 = Interlocked.Read(ref _transactions), conn0 = Interlocked.Read(ref _connections), err0 = Interlocked.Read(ref _errors);
        double cpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var watch = Stopwatch.StartNew();
        measuring?.Invoke();
        Thread.Sleep(TimeSpan.FromSeconds(options.Duration));
        long transactions = Interlocked.Read(ref _transactions) - tx0;
        long connections = Interlocked.Read(ref _connections) - conn0;
        long errors = Interlocked.Read(ref _errors) - err0;
        double seconds = watch.Elapsed.TotalSeconds;
        double cpu = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpu0;
        _stop = true;
        foreach (Thread thread in threads)
        {
            thread.Join(TimeSpan.FromSeconds(10));
        }
        return new ClientResult(transactions, seconds, errors, connections, cpu, threads.Length);
    }

    // remote, then the next spread - 1 IPv4 addresses after it (127.0.0.1 -> 127.0.0.2, ...).
    private static IPEndPoint[] Spread(IPEndPoint remote, int spread)
    {
        if (spread <= 1 || remote.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return [remote];
        }
        byte[] address = remote.Address.GetAddressBytes();
        return Enumerable.Range(0, spread).Select(i =>
        {
            byte[] next = (byte[])address.Clone();
            next[3] = (byte)(address[3] + i);
            return new IPEndPoint(new IPAddress(next), remote.Port);
        }).ToArray();
    }

    private sealed class Connection(int size) : IDisposable
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

        public void Dispose()
        {
            ((IDisposable)Send).Dispose();
            ((IDisposable)Receive).Dispose();
        }
    }

    private void Loop(IPEndPoint remote, int connections, int index)
    {
        // The addresses connections go to, in turn (see PingPongOptions.Spread).
        IPEndPoint[] remotes = Spread(remote, options.Spread);
        int nextRemote = index;
        var all = new List<Connection>(connections);
        MegaPipeChannel ch = MegaPipeChannel.Create(new ChannelOptions { PinToCpu = options.CpuOf(index) });
        try
        {
            int size = options.Size;
            for (int i = 0; i < connections; i++)
            {
                var c = new Connection(size);
                all.Add(c);
                c.Handle = ch.Connect(remotes[nextRemote++ % remotes.Length], c);
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
                            if ((++local & 63) == 0)
                            {
                                Interlocked.Add(ref _transactions, 64);
                            }
                            if (options.Transactions > 0 && ++c.Done == options.Transactions)
                            {
                                ch.Close(c.Handle); // connect again once the close completes
                                break;
                            }
                            ch.Write(c.Handle, c.Send.Memory);
                            break;
                        case ChannelCommand.Close:
                            // The connection's buffers are reused for the next connection: the client
                            // should cost no more per connection than the server does.
                            if (!_stop)
                            {
                                c.Done = 0;
                                c.Handle = ch.Connect(remotes[nextRemote++ % remotes.Length], c);
                            }
                            break;
                        case ChannelCommand.Connect:
                        case ChannelCommand.Write:
                        case ChannelCommand.Read:
                            // The first few failures go to stderr: a driver reports errors, this says which.
                            if (Interlocked.Increment(ref _errors) <= 3)
                            {
                                Console.Error.WriteLine($"client: {ev}");
                            }
                            ch.Close(c.Handle);
                            break;
                    }
                }
            }
            Interlocked.Add(ref _transactions, local & 63);
        }
        finally
        {
            // Closing the ring cancels what is in flight; only then may the buffers go.
            ch.Dispose();
            foreach (Connection c in all)
            {
                c.Dispose();
            }
        }
    }
}
