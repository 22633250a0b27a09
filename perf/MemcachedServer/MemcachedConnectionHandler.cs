using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Memcached;

// Kestrel connection middleware (UseConnectionHandler): the memcached protocol straight on the
// transport's pipes, no HTTP. Every command that has arrived is answered before one flush, so a
// client that pipelines gets its answers in one send.
internal sealed class MemcachedConnectionHandler(MemcachedStore store, MemcachedServerOptions options) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var session = new MemcachedSession(store, options.MaxItemSize);
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        MemcachedSession.Opened();
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync();
                ReadOnlySequence<byte> buffer = result.Buffer;
                bool open = session.Process(ref buffer, output);
                // Consumed up to what was processed; everything was examined, so the next read
                // waits for new bytes.
                input.AdvanceTo(buffer.Start, buffer.End);
                if (session.HasOutput)
                {
                    FlushResult flushed = await output.FlushAsync();
                    if (flushed.IsCompleted)
                    {
                        break;
                    }
                }
                if (!open || result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (ConnectionResetException)
        {
        }
        catch (ConnectionAbortedException)
        {
        }
        finally
        {
            MemcachedSession.Closed();
        }
    }
}

internal sealed record MemcachedServerOptions(int MaxItemSize);
