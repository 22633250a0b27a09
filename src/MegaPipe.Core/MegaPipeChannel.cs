// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using MegaPipe.Internal;

namespace MegaPipe;

/// <summary>
/// A MegaPipe channel (mp_create): a bidirectional pipe between one thread and the kernel that
/// carries asynchronous commands for the channel's handles and brings back their completions.
/// It is one io_uring owned by the thread that creates it; commands and dispatch run on that
/// thread only, and other threads hand work over with <see cref="Post(IChannelWorkItem)"/>.
/// </summary>
public sealed unsafe partial class MegaPipeChannel : IDisposable
{
    private static int s_nextId;

    private readonly Ring _ring;
    private readonly BufferRing _buffers;
    // The managed id of the owner thread; commands from other threads are refused.
    private readonly int _ownerThreadId;
    // Set once Dispose has begun.
    private bool _disposed;

    // Commands issued by the user.
    private long _commands;
    // CQEs consumed.
    private long _completions;
    // Events delivered to the user.
    private long _events;
    // Extra system calls made on the owner thread besides io_uring_enter (for example socket creation without lightweight sockets).
    private long _otherSystemCalls;

    private MegaPipeChannel(ChannelOptions options)
    {
        Options = options;
        Id = Interlocked.Increment(ref s_nextId);
        _ownerThreadId = Environment.CurrentManagedThreadId;
        if (options.PinToCpu >= 0)
        {
            PinCurrentThread(options.PinToCpu);
        }
        _wakeFd = -1;
        (_ring, _buffers, EngineReason) = CreateEngine(options);
        Engine = _ring is EpollRing ? ChannelEngine.Epoll : ChannelEngine.IoUring;
        _receiveCheck = new QuietReceiveCheck(supported: Engine == ChannelEngine.IoUring);
    }

    // io_uring only: re-arms receives that went quiet, whose end the kernel can miss.
    private readonly QuietReceiveCheck _receiveCheck;

    // Tests only: the quiet-receive check, to switch it off (and see the race it works around).
    internal QuietReceiveCheck ReceiveCheck => _receiveCheck;

    /// <summary>The environment variable that picks the engine when <see cref="ChannelOptions.Engine"/> is Auto.</summary>
    public const string EngineEnvironmentVariable = "MEGAPIPE_ENGINE";

    // Picks and starts the engine: io_uring unless forced to epoll, falling back to epoll (when
    // allowed) if any step of the io_uring set-up fails.
    private (Ring Ring, BufferRing Buffers, string Reason) CreateEngine(ChannelOptions options)
    {
        ChannelEngine engine = options.Engine;
        string reason;
        if (engine == ChannelEngine.Auto)
        {
            string? variable = Environment.GetEnvironmentVariable(EngineEnvironmentVariable)?.Trim();
            engine = variable?.ToLowerInvariant() switch
            {
                null or "" or "auto" => ChannelEngine.Auto,
                "io_uring" or "iouring" or "uring" => ChannelEngine.IoUring,
                "epoll" => ChannelEngine.Epoll,
                _ => throw new MegaPipeException(EngineEnvironmentVariable, Errno.EINVAL, $"{EngineEnvironmentVariable}={variable} is not an engine: use io_uring, epoll or auto"),
            };
            reason = engine == ChannelEngine.Auto ? "io_uring is available" : $"forced by {EngineEnvironmentVariable}={variable}";
        }
        else
        {
            reason = $"forced by ChannelOptions.Engine={engine}";
        }

        if (engine != ChannelEngine.Epoll)
        {
            try
            {
                return (StartEngine(new IoUring((uint)options.SubmissionQueueSize, (uint)options.CompletionQueueSize), options, out BufferRing buffers), buffers, reason);
            }
            // An invalid setting (io_uring_setup's EINVAL for queue sizes) is the caller's error on
            // either engine; anything else means this process cannot use io_uring here.
            catch (MegaPipeException e) when (engine == ChannelEngine.Auto && !(e.Operation == "io_uring_setup" && e.Errno == Errno.EINVAL))
            {
                reason = "io_uring is unavailable: " + e.Message;
            }
        }
        return (StartEngine(new EpollRing((uint)options.SubmissionQueueSize, (uint)options.CompletionQueueSize, reason), options, out BufferRing epollBuffers), epollBuffers, reason);
    }

    private Ring StartEngine(Ring ring, ChannelOptions options, out BufferRing buffers)
    {
        buffers = null!;
        try
        {
            int files = options.FileTableSize > 0 ? options.FileTableSize : DefaultFileTableSize();
            ring.RegisterSparseFiles((uint)files);
            FileTableSize = files;
            buffers = new BufferRing(ring, groupId: 0, options.ReceiveBufferCount, options.ReceiveBufferSize);
            if (_wakeFd < 0)
            {
                _wakeFd = CreateWakeEventFd();
            }
            ArmWakeRead(ring);
            // Submit the wake-up read now; this also proves io_uring_enter is allowed, which a
            // seccomp profile may deny while allowing io_uring_setup.
            ring.SubmitStartup();
            return ring;
        }
        catch
        {
            // The ring goes first: it must hold no request on the wake-up fd or buffer we free.
            ring.Dispose();
            buffers?.Dispose();
            buffers = null!;
            if (_wakeFd >= 0)
            {
                Interop.close(_wakeFd);
                _wakeFd = -1;
            }
            NativeMemoryFree();
            throw;
        }
    }

    /// <summary>
    /// Creates a channel owned by the calling thread (mp_create).
    /// </summary>
    /// <exception cref="MegaPipeException">io_uring cannot be set up; the message names the cause (EPERM from a seccomp profile or kernel.io_uring_disabled, ENOSYS, ...).</exception>
    public static MegaPipeChannel Create(ChannelOptions? options = null) => new(options ?? new ChannelOptions());

    /// <summary>A process-unique id (starting at 1).</summary>
    public int Id { get; }

    /// <summary>The options the channel was created with.</summary>
    public ChannelOptions Options { get; }

    /// <summary>Slots of the registered file table that holds lightweight sockets.</summary>
    public int FileTableSize { get; private set; }

    /// <summary>The engine that carries this channel's commands: io_uring, or the epoll fallback.</summary>
    public ChannelEngine Engine { get; }

    /// <summary>Why this engine runs, in words (for example the io_uring error that made the channel fall back to epoll).</summary>
    public string EngineReason { get; }

    /// <summary>
    /// What the engine runs without, or null when it has everything: io_uring setup flags the
    /// kernel refused, or the emulations of the epoll engine.
    /// </summary>
    public string? Degradation => _ring.Degradation;

    /// <summary>Live handles (registered and not yet fully closed).</summary>
    public int HandleCount => _handles.InUse;

    /// <summary>Slots of the registered file table in use by lightweight sockets (readable from any thread).</summary>
    public int RegisteredFilesInUse => Volatile.Read(ref _registeredFilesInUse);

    // Direct descriptors held: counted when an accept or connect gives one, uncounted when its close is submitted.
    private int _registeredFilesInUse;

    /// <summary>Channel-owned receive buffers not currently lent out.</summary>
    public int ReceiveBuffersAvailable => _buffers.Available;

    /// <summary>A snapshot of the channel's counters; may be read from any thread.</summary>
    public ChannelCounters Counters => new(
        Volatile.Read(ref _commands),
        _ring.SystemCalls + Volatile.Read(ref _otherSystemCalls),
        _ring.SqesSubmitted,
        Volatile.Read(ref _completions),
        Volatile.Read(ref _events),
        Volatile.Read(ref _wakeups));

    /// <summary>True when the calling thread owns this channel.</summary>
    public bool IsOwnerThread => Environment.CurrentManagedThreadId == _ownerThreadId;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckOwner()
    {
        if (Environment.CurrentManagedThreadId != _ownerThreadId)
        {
            ThrowHelper.ThrowWrongThread();
        }
        if (_disposed)
        {
            ThrowHelper.ThrowDisposed();
        }
    }

    private static int DefaultFileTableSize()
    {
        Interop.rlimit limit;
        if (Interop.getrlimit(Interop.RLIMIT_NOFILE, &limit) != 0)
        {
            return 1024;
        }
        return (int)Math.Min(65536UL, limit.rlim_cur);
    }

    /// <summary>Pins the calling thread to one CPU.</summary>
    public static void PinCurrentThread(int cpu)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        ulong* mask = stackalloc ulong[16];
        new Span<ulong>(mask, 16).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        if (Interop.sched_setaffinity(0, 16 * sizeof(ulong), mask) != 0)
        {
            ThrowHelper.ThrowLastErrno("sched_setaffinity");
        }
    }

    /// <summary>The CPU the calling thread runs on now.</summary>
    public static int CurrentCpu => Interop.sched_getcpu();

    /// <summary>
    /// The CPU ids the calling thread may run on (its affinity mask), in ascending order. Under
    /// <c>taskset -c 2,3</c> this is [2, 3], where <see cref="Environment.ProcessorCount"/> is 2.
    /// </summary>
    public static int[] AllowedCpus()
    {
        ulong* mask = stackalloc ulong[16];
        new Span<ulong>(mask, 16).Clear();
        if (Interop.sched_getaffinity(0, 16 * sizeof(ulong), mask) != 0)
        {
            return Enumerable.Range(0, Environment.ProcessorCount).ToArray();
        }
        var cpus = new List<int>();
        for (int cpu = 0; cpu < 16 * 64; cpu++)
        {
            if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
            {
                cpus.Add(cpu);
            }
        }
        return cpus.ToArray();
    }

    /// <summary>
    /// Closes the ring (mp_destroy). The kernel cancels every request in flight; descriptors the
    /// channel owns are closed; caller-registered descriptors are released but not closed.
    /// Call it on the owner thread, or after the owner thread has stopped.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        // Closing the ring cancels all requests and drops every direct descriptor.
        _ring.Dispose();
        foreach (HandleState? state in _handles.Items)
        {
            if (state is null || state.Status == HandleStatus.Free)
            {
                continue;
            }
            if (state.HoldsProcessDescriptor)
            {
                state.HoldsProcessDescriptor = false;
                DescriptorBudget.Release();
            }
            ReleaseDescriptor(state, closeRegular: true);
        }
        foreach (Operation? op in _operations.Items)
        {
            if (op is null)
            {
                continue;
            }
            op.Reset();
            op.FreeNative();
        }
        _buffers.Dispose();
        Interop.close(_wakeFd);
        NativeMemoryFree();
        while (_posted.TryDequeue(out _))
        {
        }
    }

    private void ReleaseDescriptor(HandleState state, bool closeRegular)
    {
        if (state.External is { } external)
        {
            _ring.ForgetDescriptor(state.Fd);
            external.DangerousRelease();
            if (state.OwnsDescriptor)
            {
                external.Dispose();
            }
        }
        else if (closeRegular && state.OwnsDescriptor && !state.IsDirect && state.Fd >= 0)
        {
            Interop.close(state.Fd);
        }
        state.External = null;
    }

    [Conditional("DEBUG")]
    private void AssertOwner() => Debug.Assert(IsOwnerThread, "called off the owner thread");
}
