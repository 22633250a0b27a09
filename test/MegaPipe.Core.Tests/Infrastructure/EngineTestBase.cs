namespace MegaPipe.Core.Tests.Infrastructure;

// Base of the test classes whose behaviours hold whichever engine carries the commands: each has
// one derived class per engine (IoUring..., Epoll...), so every test runs on both. The engine is
// always passed in ChannelOptions.Engine, never through MEGAPIPE_ENGINE (tests share a process).
public abstract class EngineTestBase
{
    protected abstract ChannelEngine Engine { get; }

    // options (or new ones) set to this class's engine.
    protected ChannelOptions Options(ChannelOptions? options = null)
    {
        options ??= new ChannelOptions();
        options.Engine = Engine;
        return options;
    }

    protected ChannelOptions Options(bool lightweight) => Options(new ChannelOptions { LightweightSockets = lightweight });

    // A channel on this class's engine, owned by the calling thread.
    protected MegaPipeChannel CreateChannel(ChannelOptions? options = null) => CreateChannel(Engine, options);

    public static MegaPipeChannel CreateChannel(ChannelEngine engine, ChannelOptions? options = null)
    {
        options ??= new ChannelOptions();
        options.Engine = engine;
        MegaPipeChannel channel = MegaPipeChannel.Create(options);
        if (channel.Engine != engine)
        {
            channel.Dispose();
            throw new InvalidOperationException($"asked for {engine}, got {channel.Engine}");
        }
        return channel;
    }

    protected LoopbackServer CreateServer(ChannelOptions? options = null) => new(Engine, options);
}
