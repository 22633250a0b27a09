// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>What carries a channel's commands to the kernel.</summary>
public enum ChannelEngine
{
    /// <summary>
    /// io_uring when it can be set up, otherwise epoll. The environment variable
    /// <c>MEGAPIPE_ENGINE</c> (<c>io_uring</c>, <c>epoll</c> or <c>auto</c>) decides when the option is left at Auto.
    /// </summary>
    Auto,

    /// <summary>io_uring only; creating the channel fails if io_uring cannot be set up.</summary>
    IoUring,

    /// <summary>
    /// The epoll fallback: the same commands, handles and events, with completions emulated over
    /// readiness. Each I/O is its own system call, and lightweight sockets are regular descriptors.
    /// </summary>
    Epoll,
}
