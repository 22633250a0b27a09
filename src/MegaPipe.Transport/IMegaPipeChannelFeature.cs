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

    /// <summary>Reads files through this channel's io_uring.</summary>
    IMegaPipeFileReader FileReader { get; }
}
