// Licensed under the MIT License. See LICENSE in the repository root.

using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// One io_uring instance: the shared SQ/CQ rings mapped into this process and the system calls
// that move entries across them. It knows nothing about handles or commands; MegaPipeChannel does.
// Not thread-safe: only the owning thread touches it (the ring is set up SINGLE_ISSUER).
internal sealed unsafe class IoUring : Ring
{
    // 1 once the mappings and the ring fd have been released.
    private int _released;
    // The ring's file descriptor (closed on Dispose).
    private int _ringFd;
    // What io_uring_enter gets as its fd: the registered ring index, or _ringFd.
    private readonly int _enterFd;
    // IORING_ENTER_REGISTERED_RING when the ring fd is registered with itself.
    private readonly uint _enterFlags;

    // Mapped regions.
    private readonly nint _sqRing;
    private readonly nuint _sqRingSize;
    private readonly nint _cqRing;
    private readonly nuint _cqRingSize;
    private readonly nint _sqesRegion;
    private readonly nuint _sqesSize;

    // The kernel writes these flags (overflow pending, task work pending).
    private readonly uint* _sqFlags;

    public IoUring(uint sqEntries, uint cqEntries)
    {
        io_uring_params p = default;
        (uint flags, string name)[] attempts =
        [
            (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "SINGLE_ISSUER|DEFER_TASKRUN"),
            (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "SINGLE_ISSUER|COOP_TASKRUN"),
            (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "COOP_TASKRUN"),
            (0, "no task-running flags"),
        ];
        const uint Common = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
        int fd = -1;
        string? degradation = null;
        foreach ((uint flags, string name) in attempts)
        {
            p = default;
            p.flags = flags | Common;
            p.cq_entries = cqEntries;
            fd = io_uring_setup(sqEntries, &p);
            if (fd >= 0)
            {
                break;
            }
            Errno errno = GetLastErrno();
            if (errno != Errno.EINVAL)
            {
                ThrowSetupFailure(errno);
            }
            degradation = $"io_uring_setup refused {name} (EINVAL); falling back";
        }
        if (fd < 0)
        {
            ThrowHelper.ThrowErrno("io_uring_setup", Errno.EINVAL, "the kernel refused every combination of setup flags");
        }
        _ringFd = fd;
        Degradation = degradation is null ? null : degradation + $"; running with setup flags 0x{p.flags:x}";

        try
        {
            if ((p.features & IORING_FEAT_NODROP) == 0 || (p.features & IORING_FEAT_EXT_ARG) == 0)
            {
                ThrowHelper.ThrowErrno("io_uring_setup", Errno.ENOSYS, "this kernel's io_uring lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG (Linux 5.11 or later is required)");
            }

            _sqRingSize = p.sq_off.array + p.sq_entries * sizeof(uint);
            _cqRingSize = p.cq_off.cqes + p.cq_entries * (uint)sizeof(io_uring_cqe);
            if ((p.features & IORING_FEAT_SINGLE_MMAP) != 0)
            {
                _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);
            }
            _sqRing = Map(_sqRingSize, IORING_OFF_SQ_RING);
            _cqRing = (p.features & IORING_FEAT_SINGLE_MMAP) != 0 ? _sqRing : Map(_cqRingSize, IORING_OFF_CQ_RING);
            _sqesSize = p.sq_entries * (uint)sizeof(io_uring_sqe);
            _sqesRegion = Map(_sqesSize, IORING_OFF_SQES);

            byte* sq = (byte*)_sqRing;
            _sqFlags = (uint*)(sq + p.sq_off.flags);
            // The SQ index array maps ring slots to SQEs; we always fill SQEs in ring order, so it is the identity.
            uint* array = (uint*)(sq + p.sq_off.array);
            for (uint i = 0; i < p.sq_entries; i++)
            {
                array[i] = i;
            }
            byte* cq = (byte*)_cqRing;
            InitializeQueues(
                (uint*)(sq + p.sq_off.head), (uint*)(sq + p.sq_off.tail), p.sq_entries, (io_uring_sqe*)_sqesRegion,
                (uint*)(cq + p.cq_off.head), (uint*)(cq + p.cq_off.tail), p.cq_entries, (io_uring_cqe*)(cq + p.cq_off.cqes));

            // Register the ring fd with itself so each io_uring_enter skips the fd table lookup.
            _enterFd = _ringFd;
            io_uring_rsrc_update update = new() { offset = uint.MaxValue, data = (ulong)_ringFd };
            if (io_uring_register(_ringFd, IORING_REGISTER_RING_FDS, &update, 1) == 1)
            {
                _enterFd = (int)update.offset;
                _enterFlags = IORING_ENTER_REGISTERED_RING;
            }
        }
        catch
        {
            ReleaseResources();
            throw;
        }
    }

    private nint Map(nuint size, long offset)
    {
        nint address = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, _ringFd, offset);
        if (address == MAP_FAILED)
        {
            ThrowHelper.ThrowLastErrno("mmap(io_uring)");
        }
        return address;
    }

    private static void ThrowSetupFailure(Errno errno)
    {
        string detail = errno switch
        {
            Errno.EPERM => DescribeEperm(),
            Errno.ENOSYS => "this kernel has no io_uring (Linux 5.1 or later with CONFIG_IO_URING is required)",
            Errno.ENOMEM => "the kernel could not allocate the rings: check RLIMIT_MEMLOCK and the cgroup memory limit",
            Errno.EMFILE or Errno.ENFILE => "no file descriptor is left for the ring",
            _ => "io_uring could not be set up",
        };
        ThrowHelper.ThrowErrno("io_uring_setup", errno, detail);
    }

    private static string DescribeEperm()
    {
        try
        {
            string value = File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim();
            if (value != "0")
            {
                return $"io_uring is disabled by the sysctl kernel.io_uring_disabled={value}";
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return "io_uring is blocked for this process, typically by a seccomp profile (Docker's default profile denies io_uring_setup)";
    }

    public override string EngineName => "io_uring";

    // One io_uring_enter: submits everything prepared and, when getEvents, runs deferred completion
    // work and waits for waitFor completions or the timeout. Returns 0 or a negative errno.
    public override int Enter(uint waitFor, bool getEvents, long timeoutNanoseconds)
    {
        PublishSqes();
        // Everything the kernel has not taken yet: an earlier enter may have taken fewer than it
        // was given (EAGAIN/EBUSY, or short of memory), and those entries go first.
        uint toSubmit = SqesNotConsumed;
        uint flags = _enterFlags;
        io_uring_getevents_arg arg = default;
        __kernel_timespec ts = default;
        void* argp = null;
        nuint argSize = 0;
        if (getEvents)
        {
            flags |= IORING_ENTER_GETEVENTS;
            if (waitFor > 0 && timeoutNanoseconds >= 0)
            {
                ts.tv_sec = timeoutNanoseconds / 1_000_000_000;
                ts.tv_nsec = timeoutNanoseconds % 1_000_000_000;
                arg.ts = (ulong)&ts;
                flags |= IORING_ENTER_EXT_ARG;
                argp = &arg;
                argSize = (nuint)sizeof(io_uring_getevents_arg);
            }
        }
        else
        {
            waitFor = 0;
        }
        CountSystemCall();
        int result = io_uring_enter(_enterFd, toSubmit, waitFor, flags, argp, argSize);
        if (result < 0)
        {
            Errno errno = GetLastErrno();
            // Entries the kernel did not consume stay in the ring and go with the next enter.
            return -(int)errno;
        }
        CountSubmitted((uint)result);
        return 0;
    }

    // The first io_uring_enter, made at start-up with what is queued: a seccomp profile may allow
    // io_uring_setup but deny io_uring_enter, and that must surface here as an exception rather
    // than at the first dispatch, where a failing enter is fatal.
    public override void SubmitStartup()
    {
        int result = Enter(0, getEvents: false, -1);
        if (IsFatalEnterResult(result))
        {
            Errno errno = (Errno)(-result);
            ThrowHelper.ThrowErrno("io_uring_enter", errno, errno == Errno.EPERM
                ? "io_uring_setup is allowed but io_uring_enter is blocked for this process, typically by a seccomp profile"
                : "the new ring cannot be entered");
        }
    }

    // The kernel asks to be entered: overflowed CQEs are waiting, or deferred task work is pending.
    public override bool NeedsEnter
    {
        get
        {
            uint flags = RingBarrier.ReadOnce(_sqFlags);
            return (flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) != 0;
        }
    }

    public override bool CqOverflowPending => (RingBarrier.ReadOnce(_sqFlags) & IORING_SQ_CQ_OVERFLOW) != 0;

    // ---- Registration ----

    // Registers an empty (sparse) fixed-file table of the given size for direct descriptors.
    public override void RegisterSparseFiles(uint count)
    {
        io_uring_rsrc_register reg = new() { nr = count, flags = IORING_RSRC_REGISTER_SPARSE };
        if (io_uring_register(_ringFd, IORING_REGISTER_FILES2, &reg, (uint)sizeof(io_uring_rsrc_register)) < 0)
        {
            ThrowHelper.ThrowLastErrno("io_uring_register(IORING_REGISTER_FILES2)");
        }
    }

    public override void RegisterBufferRing(void* ringAddress, uint entries, ushort groupId)
    {
        io_uring_buf_reg reg = new() { ring_addr = (ulong)ringAddress, ring_entries = entries, bgid = groupId };
        if (io_uring_register(_ringFd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
        {
            ThrowHelper.ThrowLastErrno("io_uring_register(IORING_REGISTER_PBUF_RING)");
        }
    }

    protected override void Dispose(bool disposing) => ReleaseResources();

    private void ReleaseResources()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }
        if (_sqesRegion != 0)
        {
            munmap(_sqesRegion, _sqesSize);
        }
        if (_cqRing != 0 && _cqRing != _sqRing)
        {
            munmap(_cqRing, _cqRingSize);
        }
        if (_sqRing != 0)
        {
            munmap(_sqRing, _sqRingSize);
        }
        int fd = Interlocked.Exchange(ref _ringFd, -1);
        if (fd >= 0)
        {
            close(fd);
        }
    }
}
