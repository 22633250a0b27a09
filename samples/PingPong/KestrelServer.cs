using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using MegaPipe;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace PingPong;

// The ping-pong server as Kestrel connection middleware (UseConnectionHandler): the same echo,
// on the MegaPipe transport (kestrel-megapipe) or on Kestrel's Sockets transport (kestrel-sockets).
// What it measures over the Core API servers is the cost of Kestrel's connection pipeline: pipes,
// the memory pool, the thread-pool hop (unless --inline), connection bookkeeping.
public sealed class KestrelServer(PingPongOptions options) : IPingPongServer
{
    private WebApplication? _app;

    public EndPoint LocalEndPoint { get; } = new IPEndPoint(IPAddress.Parse(options.Host), options.Port);

    // The transport's channel counters are not public; perf stat counts this server's system calls.
    public ChannelCounters Counters => default;

    public long Transactions => Volatile.Read(ref EchoHandler.Transactions);

    public void Start()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (options.Transport == "kestrel-megapipe")
        {
            builder.WebHost.UseMegaPipe(o =>
            {
                o.ChannelCount = options.Threads;
                o.Batching = options.Batching;
                o.Partitioning = options.Partitioning;
                o.LightweightSockets = options.Lightweight;
                o.UnsafeInlineScheduling = options.Inline;
            });
        }
        else if (options.Transport != "kestrel-sockets")
        {
            throw new ArgumentException($"unknown transport {options.Transport}");
        }
        builder.WebHost.ConfigureKestrel(k => k.Listen((IPEndPoint)LocalEndPoint, l => l.UseConnectionHandler<EchoHandler>()));
        _app = builder.Build();
        _app.StartAsync().GetAwaiter().GetResult();
    }

    private sealed class EchoHandler : ConnectionHandler
    {
        public static long Transactions;

        public override async Task OnConnectedAsync(ConnectionContext connection)
        {
            PipeReader input = connection.Transport.Input;
            PipeWriter output = connection.Transport.Output;
            long echoes = 0;
            try
            {
                while (true)
                {
                    ReadResult result = await input.ReadAsync();
                    ReadOnlySequence<byte> buffer = result.Buffer;
                    if (!buffer.IsEmpty)
                    {
                        foreach (ReadOnlyMemory<byte> segment in buffer)
                        {
                            output.Write(segment.Span);
                        }
                    }
                    input.AdvanceTo(buffer.End);
                    if (!buffer.IsEmpty)
                    {
                        echoes++;
                        FlushResult flushed = await output.FlushAsync();
                        if (flushed.IsCompleted)
                        {
                            break;
                        }
                    }
                    if (result.IsCompleted)
                    {
                        break;
                    }
                }
            }
            catch (ConnectionResetException)
            {
            }
            finally
            {
                // One shared counter update per connection, not per message: channels on other
                // cores would otherwise contend for its cache line.
                Interlocked.Add(ref Transactions, echoes);
            }
        }
    }
}
