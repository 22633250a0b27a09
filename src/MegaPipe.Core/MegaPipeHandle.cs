// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>
/// A registered socket, listener, pipe or file. Like the paper's handle it is valid only inside the
/// channel that registered it; another channel rejects it, and it goes stale once closed or unregistered.
/// </summary>
public readonly struct MegaPipeHandle : IEquatable<MegaPipeHandle>
{
    internal MegaPipeHandle(int channelId, int index, uint generation)
    {
        ChannelId = channelId;
        Index = index;
        Generation = generation;
    }

    // The id of the channel that registered the handle (channel ids start at 1, so default is invalid).
    internal int ChannelId { get; }
    // Slot in the channel's handle table.
    internal int Index { get; }
    // Incremented each time the slot is reused, so an old handle cannot reach a new registration.
    internal uint Generation { get; }

    /// <summary>True for a handle that came from a channel (not the default value).</summary>
    public bool IsValid => ChannelId != 0;

    /// <inheritdoc/>
    public bool Equals(MegaPipeHandle other) => ChannelId == other.ChannelId && Index == other.Index && Generation == other.Generation;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is MegaPipeHandle other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ChannelId, Index, Generation);

    /// <summary>Compares two handles.</summary>
    public static bool operator ==(MegaPipeHandle left, MegaPipeHandle right) => left.Equals(right);

    /// <summary>Compares two handles.</summary>
    public static bool operator !=(MegaPipeHandle left, MegaPipeHandle right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => $"handle {Index}.{Generation} of channel {ChannelId}";
}
