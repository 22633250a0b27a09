// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>Settings of one channel. The three MegaPipe optimizations are switchable for measurement.</summary>
public sealed class ChannelOptions
{
    /// <summary>
    /// Batching: commands issued between two dispatches go to the kernel together in the next
    /// dispatch's single system call. Off: each command is submitted by its own system call.
    /// </summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool Batching { get; set; } = true;

    /// <summary>
    /// Lightweight sockets: accepted and connected sockets live only in the channel's registered
    /// file table (io_uring direct descriptors), never in the process descriptor table.
    /// <see cref="MegaPipeChannel.InstallDescriptor"/> converts one when a regular descriptor is needed.
    /// Off: ordinary file descriptors.
    /// </summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool LightweightSockets { get; set; } = true;

    /// <summary>Submission queue entries: how many commands one system call can carry.</summary>
    /// <remarks>Defaults to 512.</remarks>
    public int SubmissionQueueSize { get; set; } = 512;

    /// <summary>
    /// Completion queue entries, sized for bursts. Completions beyond it are held by the kernel
    /// (never lost) and flushed on the next dispatch.
    /// </summary>
    /// <remarks>Defaults to 8192.</remarks>
    public int CompletionQueueSize { get; set; } = 8192;

    /// <summary>Slots of the registered file table for lightweight sockets; bounded by RLIMIT_NOFILE.</summary>
    /// <remarks>Defaults to the smaller of 65536 and RLIMIT_NOFILE.</remarks>
    public int FileTableSize { get; set; }

    /// <summary>Channel-owned receive buffers shared by continuous receives (a power of two, at most 32768).</summary>
    /// <remarks>Defaults to 1024.</remarks>
    public int ReceiveBufferCount { get; set; } = 1024;

    /// <summary>Bytes in each channel-owned receive buffer.</summary>
    /// <remarks>Defaults to 4096.</remarks>
    public int ReceiveBufferSize { get; set; } = 4096;

    /// <summary>Accepts kept armed on each listener, so a burst of connections is taken in one dispatch.</summary>
    /// <remarks>Defaults to 8.</remarks>
    public int AcceptDepth { get; set; } = 8;

    /// <summary>
    /// The engine: io_uring, the epoll fallback, or Auto (io_uring, falling back to epoll when it
    /// cannot be set up; the <c>MEGAPIPE_ENGINE</c> environment variable can force either).
    /// </summary>
    /// <remarks>Defaults to <see cref="ChannelEngine.Auto"/>.</remarks>
    public ChannelEngine Engine { get; set; } = ChannelEngine.Auto;

    /// <summary>A CPU to pin the creating (owner) thread to, or -1 to leave it unpinned.</summary>
    /// <remarks>Defaults to -1.</remarks>
    public int PinToCpu { get; set; } = -1;

    // Refuses what no engine could run with, before any engine is tried: a setting out of range
    // must be reported as such, not fall back to epoll as if io_uring were missing.
    internal void Validate()
    {
        static void Check(bool valid, string option, string rule, object value)
        {
            if (!valid)
            {
                throw new ArgumentOutOfRangeException(option, value, $"ChannelOptions.{option} must be {rule}.");
            }
        }
        Check(SubmissionQueueSize is >= 1 and <= 32768, nameof(SubmissionQueueSize), "between 1 and 32768", SubmissionQueueSize);
        Check(CompletionQueueSize >= SubmissionQueueSize && CompletionQueueSize <= 65536, nameof(CompletionQueueSize), $"between SubmissionQueueSize ({SubmissionQueueSize}) and 65536", CompletionQueueSize);
        Check(FileTableSize >= 0, nameof(FileTableSize), "0 (for the default) or more", FileTableSize);
        Check(ReceiveBufferCount is >= 1 and <= 32768 && System.Numerics.BitOperations.IsPow2(ReceiveBufferCount), nameof(ReceiveBufferCount),
            "a power of two between 1 and 32768 (the sizes of an io_uring provided-buffer ring)", ReceiveBufferCount);
        Check(ReceiveBufferSize is >= 1 and <= 16 * 1024 * 1024, nameof(ReceiveBufferSize), "between 1 and 16 MiB", ReceiveBufferSize);
        Check(AcceptDepth is >= 1 and <= 4096, nameof(AcceptDepth), "between 1 and 4096", AcceptDepth);
        Check(Enum.IsDefined(Engine), nameof(Engine), "Auto, IoUring or Epoll", Engine);
        Check(PinToCpu >= -1, nameof(PinToCpu), "a CPU number, or -1 for none", PinToCpu);
    }
}
