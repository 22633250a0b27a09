// Licensed under the MIT License. See LICENSE in the repository root.

using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// The transport's one set of channels (the paper's one channel per core): ChannelCount channel
// threads, each with its own ring and receive buffers, shared by every endpoint the factory binds.
// Each listener registers its accept queue (its CPU-steered partition, or the shared socket) in
// every channel of the set, so an app with several endpoints (localhost's IPv4 and IPv6, HTTP and
// HTTPS) runs ChannelCount threads, not ChannelCount per endpoint, and their connections share the
// channels' batches. The set starts with the first listener and stops, once its connections have
// drained, when the last listener is disposed; a later bind starts a new set.
internal sealed class ChannelGroup
{
    private readonly ChannelThread[] _threads;
    // Listeners holding the set (guarded by the factory's lock).
    private int _listeners;

    private ChannelGroup(ChannelThread[] threads) => _threads = threads;

    public IReadOnlyList<ChannelThread> Threads => _threads;

    public int Count => _threads.Length;

    // The engine of the channels and why (from the first channel; all are created alike).
    public ChannelEngine Engine => _threads[0].Channel.Engine;
    public string EngineReason => _threads[0].Channel.EngineReason;
    public string? EngineDegradation => _threads[0].Channel.Degradation;

    // Starts the channel threads; a channel that cannot be created (io_uring blocked with the
    // engine forced, say) fails the start, on the calling (binding) thread, after the channels
    // already running have been stopped.
    public static ChannelGroup Start(MegaPipeTransportOptions options, ILogger logger, IMemoryPoolFactory<byte>? memoryPoolFactory)
    {
        int count = options.ChannelCount;
        System.Diagnostics.Debug.Assert(count >= 1, "options are validated before the first bind");
        var threads = new ChannelThread[count];
        int started = 0;
        try
        {
            for (int i = 0; i < count; i++)
            {
                threads[i] = new ChannelThread(i, options, logger, memoryPoolFactory);
                threads[i].StartAsync().GetAwaiter().GetResult();
                started++;
            }
        }
        catch
        {
            for (int i = 0; i < started; i++)
            {
                threads[i].RequestStop();
            }
            for (int i = 0; i < started; i++)
            {
                threads[i].Stopped.GetAwaiter().GetResult();
            }
            throw;
        }
        return new ChannelGroup(threads);
    }

    // A listener starts using the set (under the factory's lock).
    public void AddListener() => _listeners++;

    // A listener is done with the set (under the factory's lock); true when it was the last one.
    public bool RemoveListener()
    {
        System.Diagnostics.Debug.Assert(_listeners > 0, "more listeners removed than added");
        return --_listeners == 0;
    }

    // Stops every channel once its connections have closed (the listeners' handles are gone by now).
    public async Task StopAsync()
    {
        foreach (ChannelThread thread in _threads)
        {
            thread.RequestStop();
        }
        foreach (ChannelThread thread in _threads)
        {
            await thread.Stopped.ConfigureAwait(false);
        }
    }
}
