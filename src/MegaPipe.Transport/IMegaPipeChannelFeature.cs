// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport;

/// <summary>
/// The MegaPipe channel a connection lives on. A connection feature of the MegaPipe transport;
/// Kestrel forwards connection features, so application code reaches it with
/// <c>HttpContext.Features.Get&lt;IMegaPipeChannelFeature&gt;()</c>. It is absent (null) when the
/// application runs on another transport.
/// </summary>
public interface IMegaPipeChannelFeature
{
    /// <summary>The index of the channel, from 0 to <see cref="MegaPipeTransportOptions.ChannelCount"/> - 1.</summary>
    int ChannelIndex { get; }

    /// <summary>
    /// True when the caller runs on the channel's own thread, as application code does with
    /// <see cref="MegaPipeTransportOptions.UnsafeInlineScheduling"/>.
    /// </summary>
    bool IsChannelThread { get; }

    /// <summary>A snapshot of the channel's counters (commands, system calls, completions); readable from any thread.</summary>
    ChannelCounters Counters { get; }

    /// <summary>
    /// The channel thread's loop turns: dispatches returned so far; readable from any thread. The
    /// count is raised after each dispatch and before its events are handled, so data a connection
    /// delivers to the application (and so every request read from it) arrived before the count
    /// reached the value it has when the application reads the request. A check begun after the
    /// count reached n therefore answers for every request read while the count is still n, on any
    /// thread, as if it had been made for each: a stat of a file, say, can be made once per turn of
    /// the channel instead of once per request.
    /// </summary>
    long DispatchCount { get; }

    /// <summary>Reads files through this channel's io_uring.</summary>
    IMegaPipeFileReader FileReader { get; }
}
