// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>How a <see cref="MegaPipeListener"/> binds.</summary>
public sealed class ListenerOptions
{
    /// <summary>
    /// Partitioning: each channel gets its own accept queue, a SO_REUSEPORT socket steered by
    /// the CPU that received the connection (a classic BPF program: cpu mod partitions).
    /// Off: one listening socket shared by every channel. Unix domain sockets are never partitioned.
    /// </summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool Partitioned { get; set; } = true;

    /// <summary>The listen(2) backlog of each accept queue.</summary>
    /// <remarks>Defaults to 512.</remarks>
    public int Backlog { get; set; } = 512;

    /// <summary>TCP_NODELAY on the listener, which accepted connections inherit.</summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool NoDelay { get; set; } = true;
}
