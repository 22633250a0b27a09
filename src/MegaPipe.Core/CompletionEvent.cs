// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>
/// One completion dispatched from a channel (mp_dispatch): which command finished, on which
/// handle, for which cookie, and with what result.
/// </summary>
public readonly struct CompletionEvent
{
    internal CompletionEvent(ChannelCommand command, MegaPipeHandle handle, object? cookie, int result, MegaPipeHandle accepted = default, int bufferId = -1, bool more = false)
    {
        Command = command;
        Handle = handle;
        Cookie = cookie;
        Result = result;
        Accepted = accepted;
        BufferId = bufferId;
        More = more;
    }

    /// <summary>The command this event completes.</summary>
    public ChannelCommand Command { get; }

    /// <summary>The handle the command was issued on (for <see cref="ChannelCommand.Accept"/>, the listener).</summary>
    public MegaPipeHandle Handle { get; }

    /// <summary>The cookie registered with <see cref="Handle"/>.</summary>
    public object? Cookie { get; }

    /// <summary>
    /// The raw result: a byte count (0 is end of stream for reads), a file descriptor for
    /// <see cref="ChannelCommand.InstallDescriptor"/>, or a negative errno.
    /// </summary>
    public int Result { get; }

    /// <summary>True when <see cref="Result"/> is not an error.</summary>
    public bool Succeeded => Result >= 0;

    /// <summary>The error, or <see cref="Errno.None"/>.</summary>
    public Errno Error => Result < 0 ? (Errno)(-Result) : Errno.None;

    /// <summary>The bytes transferred, or 0 on error.</summary>
    public int BytesTransferred => Result > 0 ? Result : 0;

    /// <summary>For <see cref="ChannelCommand.Accept"/>: the new connection's handle, registered in this channel.</summary>
    public MegaPipeHandle Accepted { get; }

    /// <summary>For <see cref="ChannelCommand.Receive"/>: the channel buffer holding the data, or -1.</summary>
    internal int BufferId { get; }

    /// <summary>For <see cref="ChannelCommand.Receive"/>: the receive stays armed and more events will follow.</summary>
    public bool More { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Command} on {Handle}: {(Result < 0 ? Error.ToString() : Result.ToString(System.Globalization.CultureInfo.InvariantCulture))}";
}
