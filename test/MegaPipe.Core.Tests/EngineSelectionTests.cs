namespace MegaPipe.Core.Tests;

// ChannelOptions.Engine picks the engine, and the channel says which one runs and what it lacks.
public class EngineSelectionTests
{
    [Fact]
    public void IoUring_WhenAsked_RunsWithEverySetupFlag()
    {
        using var channel = MegaPipeChannel.Create(new ChannelOptions { Engine = ChannelEngine.IoUring });
        Assert.Equal(ChannelEngine.IoUring, channel.Engine);
        Assert.Contains("ChannelOptions.Engine=IoUring", channel.EngineReason, StringComparison.Ordinal);
        // This kernel (6.8 or later, and CI's) takes SINGLE_ISSUER|DEFER_TASKRUN.
        Assert.True(channel.Degradation is null, channel.Degradation);
    }

    [Fact]
    public void Epoll_WhenAsked_SaysWhatItEmulates()
    {
        using var channel = MegaPipeChannel.Create(new ChannelOptions { Engine = ChannelEngine.Epoll });
        Assert.Equal(ChannelEngine.Epoll, channel.Engine);
        Assert.Contains("ChannelOptions.Engine=Epoll", channel.EngineReason, StringComparison.Ordinal);
        Assert.NotNull(channel.Degradation);
        Assert.Contains("epoll", channel.Degradation, StringComparison.Ordinal);
        Assert.Contains("lightweight sockets are regular descriptors", channel.Degradation, StringComparison.Ordinal);
    }
}
