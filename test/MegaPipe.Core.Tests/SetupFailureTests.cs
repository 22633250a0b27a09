using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MegaPipe.Core.Tests.Infrastructure;
using static MegaPipe.Core.Tests.Infrastructure.TestNative;

namespace MegaPipe.Core.Tests;

// io_uring blocked the way container runtimes block it: a seccomp filter answering EPERM. The
// filter is installed on a dedicated thread only (no TSYNC), so the rest of the test process,
// which other tests share, keeps io_uring.
public class SetupFailureTests
{
    private const int SYS_io_uring_setup = 425;
    private const int SYS_io_uring_enter = 426;
    private const int EPERM = 1;

    // linux/audit.h
    private const uint AUDIT_ARCH_X86_64 = 0xC000003E;
    private const uint AUDIT_ARCH_AARCH64 = 0xC00000B7;
    // linux/seccomp.h
    private const uint SECCOMP_RET_ERRNO = 0x00050000;
    private const uint SECCOMP_RET_ALLOW = 0x7FFF0000;
    // linux/filter.h: classic BPF opcodes
    private const ushort BPF_LD_W_ABS = 0x00 | 0x00 | 0x20;
    private const ushort BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00;
    private const ushort BPF_RET_K = 0x06 | 0x00;
    // struct seccomp_data: int nr; __u32 arch; ...
    private const uint SeccompDataNr = 0;
    private const uint SeccompDataArch = 4;

    private static uint AuditArch => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => AUDIT_ARCH_X86_64,
        Architecture.Arm64 => AUDIT_ARCH_AARCH64,
        var other => throw new PlatformNotSupportedException($"no seccomp architecture constant for {other}"),
    };

    // Makes system call nr fail with errno on the calling thread only.
    private static unsafe void DenyOnThisThread(int nr, int errno)
    {
        sock_filter* code = stackalloc sock_filter[6];
        code[0] = new sock_filter { code = BPF_LD_W_ABS, k = SeccompDataArch };
        code[1] = new sock_filter { code = BPF_JMP_JEQ_K, jt = 0, jf = 3, k = AuditArch }; // other ABI: allow
        code[2] = new sock_filter { code = BPF_LD_W_ABS, k = SeccompDataNr };
        code[3] = new sock_filter { code = BPF_JMP_JEQ_K, jt = 0, jf = 1, k = (uint)nr };
        code[4] = new sock_filter { code = BPF_RET_K, k = SECCOMP_RET_ERRNO | (uint)errno };
        code[5] = new sock_filter { code = BPF_RET_K, k = SECCOMP_RET_ALLOW };
        var program = new sock_fprog { len = 6, filter = code };
        // An unprivileged filter needs no_new_privs; both are per-thread without SECCOMP_FILTER_FLAG_TSYNC.
        Assert.True(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, $"PR_SET_NO_NEW_PRIVS: errno {Marshal.GetLastPInvokeError()}");
        Assert.True(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (nuint)(&program), 0, 0) == 0, $"PR_SET_SECCOMP: errno {Marshal.GetLastPInvokeError()}");
    }

    private static Exception? CreateOnFilteredThread(int deniedSyscall)
        => TestThread.Run($"seccomp-{deniedSyscall}", () =>
        {
            DenyOnThisThread(deniedSyscall, EPERM);
            return Record.Exception(() => MegaPipeChannel.Create(new ChannelOptions { Engine = ChannelEngine.IoUring }).Dispose());
        });

    // With the default engine choice the channel falls back to epoll on the filtered thread, says
    // why, and works: one echo round trip over loopback through the fallback engine.
    private static (ChannelEngine Engine, string Reason, string Echo) CreateAutoOnFilteredThread(int deniedSyscall)
        => TestThread.Run($"seccomp-auto-{deniedSyscall}", () =>
        {
            DenyOnThisThread(deniedSyscall, EPERM);
            using var channel = MegaPipeChannel.Create();
            var pump = new ChannelPump(channel);
            using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), partitions: 1);
            MegaPipeHandle listening = channel.RegisterListener(listener, 0);
            channel.Accept(listening);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint);
            MegaPipeHandle server = pump.WaitFor(ChannelCommand.Accept).Accepted;
            channel.Receive(server);
            client.Send("ping"u8);
            pump.Until(() => pump.ReceivedCount(server) == 4, what: "the ping");
            channel.Write(server, pump.ReceivedBytes(server));
            pump.WaitFor(ChannelCommand.Write);
            byte[] reply = LoopbackServer.ReceiveExactly(client, 4);
            return (channel.Engine, channel.EngineReason, System.Text.Encoding.ASCII.GetString(reply));
        });

    // Either call denied (io_uring_setup: no ring at all; io_uring_enter: a ring that could never be
    // driven), Auto falls back to epoll on that thread, says which call and why, and the channel works.
    [Theory]
    [InlineData(SYS_io_uring_setup, "io_uring_setup")]
    [InlineData(SYS_io_uring_enter, "io_uring_enter")]
    public void CreateAuto_WhenSeccompDeniesAnIoUringCall_FallsBackToEpollThatWorks(int syscall, string name)
    {
        (ChannelEngine engine, string reason, string echo) = CreateAutoOnFilteredThread(syscall);
        Assert.Equal(ChannelEngine.Epoll, engine);
        Assert.Contains(name, reason, StringComparison.Ordinal);
        Assert.Contains("EPERM", reason, StringComparison.Ordinal);
        Assert.Contains("seccomp", reason, StringComparison.Ordinal);
        Assert.Equal("ping", echo);

        // Other threads still get io_uring.
        using var channel = MegaPipeChannel.Create();
        Assert.Equal(ChannelEngine.IoUring, channel.Engine);
    }

    // With io_uring asked for, either denied call is an EPERM naming seccomp from Create. For
    // io_uring_enter that matters most: setup works, but the ring could never be driven, and Create
    // must say so rather than the first Dispatch bringing the process down.
    [Theory]
    [InlineData(SYS_io_uring_setup, "io_uring_setup")]
    [InlineData(SYS_io_uring_enter, "io_uring_enter")]
    public void Create_WhenSeccompDeniesAnIoUringCall_ThrowsEpermNamingSeccomp(int syscall, string name)
    {
        Exception? e = CreateOnFilteredThread(syscall);
        MegaPipeException error = Assert.IsType<MegaPipeException>(e);
        Assert.Equal(Errno.EPERM, error.Errno);
        Assert.Equal(name, error.Operation);
        Assert.Contains("seccomp", error.Message, StringComparison.Ordinal);
        Assert.Contains("EPERM", error.Message, StringComparison.Ordinal);

        // Only that thread was filtered.
        using var channel = MegaPipeChannel.Create(new ChannelOptions { Engine = ChannelEngine.IoUring });
        Assert.Equal(ChannelEngine.IoUring, channel.Engine);
    }

    // A bad setting is the caller's error on every engine, reported before any engine is tried:
    // Auto must not take it for a missing io_uring and fall back to epoll.
    [Theory]
    [InlineData(ChannelEngine.IoUring, "CompletionQueueSize")]
    [InlineData(ChannelEngine.Epoll, "CompletionQueueSize")]
    [InlineData(ChannelEngine.Auto, "CompletionQueueSize")]
    [InlineData(ChannelEngine.Auto, "ReceiveBufferCount")]
    [InlineData(ChannelEngine.IoUring, "ReceiveBufferCount")]
    [InlineData(ChannelEngine.Epoll, "ReceiveBufferCount")]
    [InlineData(ChannelEngine.Auto, "ReceiveBufferSize")]
    [InlineData(ChannelEngine.Auto, "AcceptDepth")]
    [InlineData(ChannelEngine.Auto, "SubmissionQueueSize")]
    public void Create_WithAnOptionOutOfRange_IsRefusedNamingIt_OnEveryEngine(ChannelEngine engine, string option)
    {
        var options = new ChannelOptions { Engine = engine };
        switch (option)
        {
            case "CompletionQueueSize":
                options.SubmissionQueueSize = 64;
                options.CompletionQueueSize = 8;
                break;
            case "ReceiveBufferCount":
                options.ReceiveBufferCount = 1000;
                break;
            case "ReceiveBufferSize":
                options.ReceiveBufferSize = 0;
                break;
            case "AcceptDepth":
                options.AcceptDepth = 0;
                break;
            case "SubmissionQueueSize":
                options.SubmissionQueueSize = 0;
                break;
        }
        ArgumentOutOfRangeException error = Assert.Throws<ArgumentOutOfRangeException>(() => MegaPipeChannel.Create(options));
        Assert.Equal(option, error.ParamName);
        Assert.Contains($"ChannelOptions.{option} must be", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("io_uring", ChannelEngine.IoUring)]
    [InlineData(" URING ", ChannelEngine.IoUring)]
    [InlineData("epoll", ChannelEngine.Epoll)]
    [InlineData("", ChannelEngine.Auto)]
    [InlineData(null, ChannelEngine.Auto)]
    [InlineData("Auto", ChannelEngine.Auto)]
    public void TryParseEngine_ReadsTheEnvironmentVariablesValues(string? value, ChannelEngine expected)
    {
        Assert.True(MegaPipeChannel.TryParseEngine(value, out ChannelEngine engine));
        Assert.Equal(expected, engine);
        Assert.False(MegaPipeChannel.TryParseEngine("bogus", out _));
    }
}
