// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>
/// Work another thread hands to a channel with <see cref="MegaPipeChannel.Post(IChannelWorkItem)"/>.
/// It runs on the channel's own thread during the next dispatch, where it may issue commands.
/// </summary>
public interface IChannelWorkItem
{
    /// <summary>Runs on the channel's thread.</summary>
    void Execute(MegaPipeChannel channel);
}
