using System.Net;
using MegaPipe;

namespace PingPong;

public interface IPingPongServer
{
    EndPoint LocalEndPoint { get; }
    void Start();
    // Channel counters summed over all channels (zero for the sockets server).
    ChannelCounters Counters { get; }
    long Transactions { get; }
}

// Reads control lines from stdin so a driver can measure a window of the server's life.
public static class ServerControl
{
    public static void Run(IPingPongServer server)
    {
        long allocated = 0, transactions = 0;
        ChannelCounters counters = default;
        double cpu = 0;
        string? line;
        while ((line = Console.ReadLine()) is not null)
        {
            switch (line.Trim())
            {
                case "mark":
                    allocated = GC.GetTotalAllocatedBytes(precise: true);
                    counters = server.Counters;
                    transactions = server.Transactions;
                    cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
                    Console.WriteLine("marked");
                    break;
                case "stats":
                    long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
                    ChannelCounters delta = server.Counters - counters;
                    long tx = server.Transactions - transactions;
                    double cpuSeconds = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpu;
                    Console.WriteLine(FormattableString.Invariant(
                        $"{{\"allocatedBytes\":{bytes},\"transactions\":{tx},\"cpuSeconds\":{cpuSeconds:F3},\"commands\":{delta.Commands},\"ringSystemCalls\":{delta.SystemCalls},\"completions\":{delta.Completions},\"wakeups\":{delta.Wakeups}}}"));
                    break;
                case "heap":
                    // The live managed heap after a full, compacting collection: what connections hold, without garbage.
                    System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
                    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                    GC.WaitForPendingFinalizers();
                    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                    Console.WriteLine(FormattableString.Invariant($"{{\"heapBytes\":{GC.GetTotalMemory(forceFullCollection: false)}}}"));
                    break;
                case "quit":
                    return;
            }
        }
    }
}
