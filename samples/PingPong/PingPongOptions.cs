using System.Globalization;

namespace PingPong;

public sealed class PingPongOptions
{
    public string Mode { get; private set; } = "";
    public string Host { get; private set; } = "127.0.0.1";
    public int Port { get; private set; } = 5001;
    // Client: spread the connections over this many loopback addresses (127.0.0.1, .2, ...), so
    // that short connections do not run out of 4-tuples: one address gives the client about 28,000
    // source ports, each held in TIME_WAIT for a minute after its connection closes, and at tens of
    // thousands of connections a second the kernel's search for a free one throttles the client.
    // The server must listen on 0.0.0.0 (--host) to answer on all of them.
    public int Spread { get; private set; } = 1;
    public int Threads { get; private set; } = Environment.ProcessorCount;
    public string Transport { get; private set; } = "megapipe";
    public int Size { get; private set; } = 64;
    public int Connections { get; private set; } = 64;
    public double Duration { get; private set; } = 10;
    public double Warmup { get; private set; }
    public int Transactions { get; private set; }
    public bool Batching { get; private set; } = true;
    public bool Partitioning { get; private set; } = true;
    public bool Lightweight { get; private set; } = true;
    public bool Inline { get; private set; }
    public bool Control { get; private set; }
    public int FirstCpu { get; private set; } = -1;
    public int[] Cpus { get; private set; } = [];

    public static PingPongOptions Parse(string[] args)
    {
        var o = new PingPongOptions { Mode = args.Length > 0 ? args[0] : "" };
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--host": o.Host = Next(); break;
                case "--port": o.Port = NextInt(); break;
                case "--spread": o.Spread = NextInt(); break;
                case "--threads": o.Threads = NextInt(); break;
                case "--transport": o.Transport = Next(); break;
                case "--size": o.Size = NextInt(); break;
                case "--connections": o.Connections = NextInt(); break;
                case "--duration": o.Duration = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": o.Warmup = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--transactions": o.Transactions = NextInt(); break;
                case "--no-batching": o.Batching = false; break;
                case "--no-partitioning": o.Partitioning = false; break;
                case "--no-lightweight": o.Lightweight = false; break;
                case "--inline": o.Inline = true; break;
                case "--control": o.Control = true; break;
                case "--pin-from": o.FirstCpu = NextInt(); break;
                case "--cpus": o.Cpus = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray(); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (o.Cpus.Length > 0 && o.Threads > o.Cpus.Length)
        {
            throw new ArgumentException("--cpus names fewer CPUs than --threads");
        }
        return o;
    }

    // The CPU thread (or channel) `index` is pinned to: --cpus gives the list, --pin-from the first of
    // consecutive CPUs; -1 leaves it to the scheduler.
    public int CpuOf(int index) => Cpus.Length > 0 ? Cpus[index % Cpus.Length] : FirstCpu >= 0 ? FirstCpu + index : -1;

    public ChannelOptionsSnapshot ChannelOptions() => new(Batching, Lightweight);
}

public readonly record struct ChannelOptionsSnapshot(bool Batching, bool Lightweight)
{
    public MegaPipe.ChannelOptions Create(int cpu) => new() { Batching = Batching, LightweightSockets = Lightweight, PinToCpu = cpu };
}
