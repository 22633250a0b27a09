// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>The command a completion event answers.</summary>
public enum ChannelCommand : byte
{
    /// <summary>No command; the default value of an event.</summary>
    None,
    /// <summary>A connection was accepted (mp_accept).</summary>
    Accept,
    /// <summary>An outgoing connection was established or failed.</summary>
    Connect,
    /// <summary>A read into a caller buffer completed (mp_read).</summary>
    Read,
    /// <summary>Data arrived into a channel-owned buffer from a continuous receive.</summary>
    Receive,
    /// <summary>A write completed: all bytes were written, or it failed (mp_write).</summary>
    Write,
    /// <summary>A shutdown of one direction completed.</summary>
    Shutdown,
    /// <summary>The handle was closed; this is the last event the handle's cookie receives.</summary>
    Close,
    /// <summary>A read of a file at an offset completed.</summary>
    ReadFile,
    /// <summary>A lightweight socket was given a regular file descriptor; the result is the descriptor.</summary>
    InstallDescriptor,
}
