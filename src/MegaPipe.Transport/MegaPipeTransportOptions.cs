// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport;

/// <summary>Options of the MegaPipe transport. Bindable from the "MegaPipe" configuration section.</summary>
public sealed class MegaPipeTransportOptions
{
    /// <summary>
    /// The number of channels, each a thread with its own io_uring and receive buffers. The transport
    /// runs one set of channels for the whole process, shared by every endpoint it binds: each endpoint
    /// registers one accept queue per channel (a CPU-steered partition, or the shared socket when
    /// partitioning is off). Must be at least 1; 0 or less is refused at start-up.
    /// </summary>
    /// <remarks>Defaults to <see cref="Environment.ProcessorCount"/>.</remarks>
    public int ChannelCount { get; set; } = Environment.ProcessorCount;

    /// <summary>Batching: each channel carries all its pending commands (sends of every connection, receives, accepts) in one system call per loop turn.</summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool Batching { get; set; } = true;

    /// <summary>Partitioning: one CPU-steered SO_REUSEPORT accept queue per channel instead of one shared listening socket.</summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool Partitioning { get; set; } = true;

    /// <summary>Lightweight sockets: accepted connections live only in the channel's registered file table (io_uring direct descriptors).</summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool LightweightSockets { get; set; } = true;

    /// <summary>
    /// Runs Kestrel and application code inline on the channel thread when data arrives, instead of
    /// on the thread pool. Faster (no thread hop, and responses join the channel's next batch),
    /// but application code that blocks stalls every other connection of that channel.
    /// </summary>
    /// <remarks>Defaults to <see langword="false"/>.</remarks>
    public bool UnsafeInlineScheduling { get; set; }

    /// <summary>Received bytes buffered per connection before the transport stops reading (backpressure); 0 or less for no limit.</summary>
    /// <remarks>Defaults to 1 MiB, as Kestrel's Sockets transport.</remarks>
    public long MaxReadBufferSize { get; set; } = 1024 * 1024;

    /// <summary>Response bytes buffered per connection before the application's flush waits; 0 or less for no limit.</summary>
    /// <remarks>Defaults to 64 KiB, as Kestrel's Sockets transport.</remarks>
    public long MaxWriteBufferSize { get; set; } = 64 * 1024;

    /// <summary>The listen backlog of each accept queue.</summary>
    /// <remarks>Defaults to 512, as Kestrel's Sockets transport.</remarks>
    public int Backlog { get; set; } = 512;

    /// <summary>TCP_NODELAY on accepted connections.</summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool NoDelay { get; set; } = true;

    /// <summary>Pins channel thread i to CPU i (mod the CPU count), so partitioned accept queues and their channels share a core.</summary>
    /// <remarks>Defaults to <see langword="false"/>.</remarks>
    public bool PinChannelThreads { get; set; }

    /// <summary>Channel-owned receive buffers per channel, shared by all its connections.</summary>
    /// <remarks>Defaults to 1024.</remarks>
    public int ReceiveBufferCount { get; set; } = 1024;

    /// <summary>Size of each channel-owned receive buffer.</summary>
    /// <remarks>Defaults to 4096.</remarks>
    public int ReceiveBufferSize { get; set; } = 4096;

    /// <summary>
    /// The engine under the channels: io_uring, the epoll fallback, or Auto (io_uring, falling back
    /// to epoll where it cannot be set up, as under Docker's default seccomp profile). With Auto the
    /// environment variable MEGAPIPE_ENGINE (io_uring, epoll) can force either. The engine in use,
    /// and why, is logged once at start-up.
    /// </summary>
    /// <remarks>Defaults to <see cref="ChannelEngine.Auto"/>.</remarks>
    public ChannelEngine Engine { get; set; } = ChannelEngine.Auto;

    /// <summary>
    /// The most connections each endpoint holds open at once; <see langword="null"/> for no limit.
    /// At the limit the channels stop accepting, so further connections wait in the listen backlog
    /// (the few the kernel had already accepted are held unread) until connections close.
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/>.</remarks>
    public long? MaxConnections { get; set; }

    /// <summary>
    /// Serves the HTTPS endpoints of Kestrel's configuration (<c>Kestrel:Endpoints:&lt;name&gt;</c> with an https URL
    /// and a certificate) with TLS terminated on the channels, as if each were set up with <c>UseMegaPipeHttps</c>
    /// (see <see cref="Microsoft.AspNetCore.Hosting.ListenOptionsMegaPipeHttpsExtensions"/>) with the options the
    /// configuration gives it. A callback the application registered for an endpoint with
    /// <c>ConfigurationLoader.Endpoint(name, ...)</c> still runs first; if it sets up HTTPS itself, that stands. Endpoints
    /// with an <c>Sni</c> section keep Kestrel's SslStream (logged). Applies to the endpoints present at startup.
    /// </summary>
    /// <remarks>Defaults to <see langword="false"/>. Bound from <c>MegaPipe:TlsForConfiguredEndpoints</c>.</remarks>
    public bool TlsForConfiguredEndpoints { get; set; }

    // How much of one dispatch turn TLS handshake steps may take before the rest wait for later turns (see
    // Internal/HandshakeScheduler.cs). Not a public option: tests set zero to make every step wait.
    internal TimeSpan HandshakeTurnBudget { get; set; } = Internal.HandshakeScheduler.DefaultTurnBudget;

    // The settings of one channel of the set, built here only: what the transport's options say
    // for every channel, plus the CPU channel threads are pinned to (-1: none).
    internal ChannelOptions CreateChannelOptions(int pinToCpu) => new()
    {
        Batching = Batching,
        LightweightSockets = LightweightSockets,
        ReceiveBufferCount = ReceiveBufferCount,
        ReceiveBufferSize = ReceiveBufferSize,
        Engine = Engine,
        PinToCpu = pinToCpu,
    };
}
