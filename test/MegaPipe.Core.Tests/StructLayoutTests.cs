using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using MegaPipe.Internal;

namespace MegaPipe.Core.Tests;

// Checks every kernel struct and constant in src/MegaPipe.Core/Interop against the C headers:
// a C probe, compiled with gcc against the machine's headers (Linux 6.1 UAPI here), prints
// sizeof/offsetof of each field and the value of each constant. Every field of every Interop
// struct and every Interop constant is checked, so one added later cannot slip through.
public class StructLayoutTests
{
    private const string IoUringHeader = "/usr/include/linux/io_uring.h";

    // The Interop structs, by their C names (all are struct tags in the headers).
    private static readonly Type[] Structs =
    [
        typeof(Interop.io_uring_sqe),
        typeof(Interop.io_uring_cqe),
        typeof(Interop.io_uring_params),
        typeof(Interop.io_sqring_offsets),
        typeof(Interop.io_cqring_offsets),
        typeof(Interop.io_uring_buf),
        typeof(Interop.io_uring_buf_reg),
        typeof(Interop.io_uring_rsrc_register),
        typeof(Interop.io_uring_rsrc_update),
        typeof(Interop.io_uring_getevents_arg),
        typeof(Interop.__kernel_timespec),
        typeof(Interop.sock_filter),
        typeof(Interop.sock_fprog),
        typeof(Interop.iovec),
        typeof(Interop.msghdr),
        typeof(Interop.linger),
        typeof(Interop.rlimit),
    ];

    // C# fields whose C name differs: fields the 6.1 header still calls reserved or padding
    // (newer kernels named them), and union members newer than the header, checked against the
    // member of the same union that the header has.
    private static readonly Dictionary<string, string> FieldNames = new()
    {
        ["io_sqring_offsets.user_addr"] = "resv2",       // named user_addr in 6.5 (IORING_SETUP_NO_MMAP)
        ["io_cqring_offsets.user_addr"] = "resv2",
        ["io_uring_buf_reg.flags"] = "pad",              // named flags in 6.4 (IOU_PBUF_RING_MMAP)
        ["io_uring_getevents_arg.min_wait_usec"] = "pad", // named min_wait_usec in 6.12
        ["io_uring_sqe.install_fd_flags"] = "rw_flags",  // 6.8; a member of the rw_flags union
        ["io_uring_sqe.nop_flags"] = "rw_flags",         // 6.10 (IORING_NOP_INJECT_RESULT); a member of the rw_flags union
        ["io_uring_sqe.optlen"] = "file_index",          // 6.7 (socket uring_cmd); a member of the file_index union
        ["io_uring_sqe.optval"] = "addr3",               // 6.7; a member of the addr3 union
    };

    // C# fields newer than the 6.1 header with no same-sized member to check them against: their
    // offset and size in the kernel that introduced them.
    private static readonly Dictionary<string, (long Offset, long Size)> FieldsNewerThanHeader = new()
    {
        // Linux 6.7: struct { __u32 level; __u32 optname; } joins the addr union at offset 16.
        ["io_uring_sqe.level"] = (16, 4),
        ["io_uring_sqe.optname"] = (20, 4),
    };

    // Constants that are C expressions rather than one macro.
    private static readonly Dictionary<string, string> ConstantExpressions = new()
    {
        ["BPF_LD_W_ABS"] = "BPF_LD | BPF_W | BPF_ABS",
        ["BPF_ALU_MOD_K"] = "BPF_ALU | BPF_MOD | BPF_K",
        ["BPF_RET_A"] = "BPF_RET | BPF_A",
    };

    // Constants newer than the 6.1 header, with their values in the kernel that introduced them.
    private static readonly Dictionary<string, long> NewerThanHeader = new()
    {
        // enum io_uring_op in Linux 6.8: ..., IORING_OP_SENDMSG_ZC (48), READ_MULTISHOT, WAITID,
        // FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAITV (53), IORING_OP_FIXED_FD_INSTALL (54).
        ["IORING_OP_FIXED_FD_INSTALL"] = 54,
        // enum io_uring_socket_op in Linux 6.7: SIOCINQ, SIOCOUTQ, GETSOCKOPT, SETSOCKOPT (3).
        ["SOCKET_URING_OP_SETSOCKOPT"] = 3,
        // io_uring.h in Linux 6.10 (nop_flags) and 6.8 (IORING_OP_FIXED_FD_INSTALL's flags).
        ["IORING_NOP_INJECT_RESULT"] = 1,
        ["IORING_FIXED_FD_NO_CLOEXEC"] = 1,
    };

    private static readonly string[] Includes =
    [
        "stddef.h", "stdio.h", "errno.h", "fcntl.h", "sys/socket.h", "sys/uio.h", "sys/resource.h",
        "sys/mman.h", "sys/eventfd.h", "sys/syscall.h", "netinet/in.h", "netinet/tcp.h", "sys/un.h",
        "linux/io_uring.h", "linux/filter.h", "linux/time_types.h", "sys/epoll.h", "sys/stat.h",
    ];

    private static Dictionary<string, long>? s_probe;

    private static string CName(Type t) => t.Name;

    private static IEnumerable<FieldInfo> FieldsOf(Type t)
        => t.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance);

    private static string CFieldName(Type t, FieldInfo f)
        => FieldNames.TryGetValue($"{CName(t)}.{f.Name}", out string? c) ? c : f.Name;

    private static IEnumerable<FieldInfo> Constants()
        => typeof(Interop).GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType != typeof(string));

    private static string GenerateProbe()
    {
        string header = File.ReadAllText(IoUringHeader);
        var c = new StringBuilder();
        // statx(2) and AT_EMPTY_PATH are GNU extensions in glibc's headers.
        c.AppendLine("#define _GNU_SOURCE");
        foreach (string include in Includes)
        {
            c.Append("#include <").Append(include).AppendLine(">");
        }
        c.AppendLine("int main(void) {");
        foreach (Type t in Structs)
        {
            string s = CName(t);
            c.AppendLine($"  printf(\"size {s} %zu\\n\", sizeof(struct {s}));");
            foreach (FieldInfo f in FieldsOf(t).Where(f => !FieldsNewerThanHeader.ContainsKey($"{s}.{f.Name}")))
            {
                string cf = CFieldName(t, f);
                c.AppendLine($"  printf(\"offset {s}.{f.Name} %zu\\n\", offsetof(struct {s}, {cf}));");
                c.AppendLine($"  printf(\"fieldsize {s}.{f.Name} %zu\\n\", sizeof(((struct {s} *)0)->{cf}));");
            }
        }
        // Layout facts the engine relies on outside the Interop structs.
        c.AppendLine("  printf(\"offset io_uring_buf_ring.tail %zu\\n\", offsetof(struct io_uring_buf_ring, tail));");
        c.AppendLine("  printf(\"size sockaddr_storage %zu\\n\", sizeof(struct sockaddr_storage));");
        c.AppendLine("  printf(\"size sockaddr_in %zu\\n\", sizeof(struct sockaddr_in));");
        c.AppendLine("  printf(\"size sockaddr_in6 %zu\\n\", sizeof(struct sockaddr_in6));");
        c.AppendLine("  printf(\"size sockaddr_un %zu\\n\", sizeof(struct sockaddr_un));");
        c.AppendLine("  printf(\"size epoll_event %zu\\n\", sizeof(struct epoll_event));");
        c.AppendLine("  printf(\"offset epoll_event.data %zu\\n\", offsetof(struct epoll_event, data));");
        c.AppendLine("  printf(\"size statx %zu\\n\", sizeof(struct statx));");
        c.AppendLine("  printf(\"offset statx.stx_mode %zu\\n\", offsetof(struct statx, stx_mode));");
        foreach (FieldInfo f in Constants())
        {
            string name = f.Name;
            if (ConstantExpressions.TryGetValue(name, out string? expression))
            {
                c.AppendLine($"  printf(\"const {name} %lld\\n\", (long long)({expression}));");
            }
            else if (Regex.IsMatch(header, $@"\b{name}\b"))
            {
                // Enumerators and macros of io_uring.h.
                c.AppendLine($"  printf(\"const {name} %lld\\n\", (long long)({name}));");
            }
            else
            {
                // libc macros; a name no header defines is reported as missing.
                c.AppendLine($"#ifdef {name}");
                c.AppendLine($"  printf(\"const {name} %lld\\n\", (long long)({name}));");
                c.AppendLine("#else");
                c.AppendLine($"  printf(\"missing {name} 0\\n\");");
                c.AppendLine("#endif");
            }
        }
        foreach (string name in Enum.GetNames<Errno>().Where(n => n != nameof(Errno.None)))
        {
            c.AppendLine($"  printf(\"errno {name} %d\\n\", {name});");
        }
        c.AppendLine("  return 0;");
        c.AppendLine("}");
        return c.ToString();
    }

    private static (int ExitCode, string Output) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"cannot run {file} ({e.Message}): the struct-layout tests need gcc and the kernel UAPI headers (.ci/run installs them)");
            throw;
        }
        using (process)
        {
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(60_000), $"{file} did not finish");
            return (process.ExitCode, stdout + stderr.Result);
        }
    }

    // Compiles and runs the probe once; "kind name" -> value.
    private static Dictionary<string, long> Probe()
    {
        if (s_probe is not null)
        {
            return s_probe;
        }
        Assert.True(File.Exists(IoUringHeader), $"{IoUringHeader} is missing: install linux-libc-dev (.ci/run does)");
        string dir = Directory.CreateTempSubdirectory("megapipe-layout-").FullName;
        try
        {
            string source = Path.Combine(dir, "probe.c");
            string exe = Path.Combine(dir, "probe");
            File.WriteAllText(source, GenerateProbe());
            (int cc, string ccOutput) = Run("gcc", "-std=gnu11", "-o", exe, source);
            Assert.True(cc == 0, $"gcc failed:\n{ccOutput}");
            (int rc, string output) = Run(exe);
            Assert.True(rc == 0, $"probe failed:\n{output}");
            var values = new Dictionary<string, long>();
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] parts = line.Split(' ');
                values[parts[0] + " " + parts[1]] = long.Parse(parts[2], CultureInfo.InvariantCulture);
            }
            return s_probe = values;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int ManagedSize(Type t)
        => (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    public static TheoryData<string> StructNames()
    {
        var data = new TheoryData<string>();
        foreach (Type t in Structs)
        {
            data.Add(t.Name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(StructNames))]
    public void Struct_MatchesHeader(string name)
    {
        Dictionary<string, long> c = Probe();
        Type t = Structs.Single(s => s.Name == name);
        var mismatches = new List<string>();
        long size = c[$"size {name}"];
        if (Marshal.SizeOf(t) != size || ManagedSize(t) != size)
        {
            mismatches.Add($"sizeof: C {size}, Marshal {Marshal.SizeOf(t)}, sizeof {ManagedSize(t)}");
        }
        foreach (FieldInfo f in FieldsOf(t))
        {
            (long offset, long fieldSize) = FieldsNewerThanHeader.TryGetValue($"{name}.{f.Name}", out var newer)
                ? newer
                : (c[$"offset {name}.{f.Name}"], c[$"fieldsize {name}.{f.Name}"]);
            long csOffset = Marshal.OffsetOf(t, f.Name).ToInt64();
            long csSize = f.FieldType.IsPointer ? IntPtr.Size : Marshal.SizeOf(f.FieldType);
            if (offset != csOffset || fieldSize != csSize)
            {
                mismatches.Add($"{f.Name} (C {CFieldName(t, f)}): C offset {offset} size {fieldSize}, C# offset {csOffset} size {csSize}");
            }
        }
        Assert.True(mismatches.Count == 0, $"struct {name}:\n" + string.Join("\n", mismatches));
    }

    [Fact]
    public void IoUringSqe_CoversTheFieldsTheEngineFills()
    {
        // The fields the commands write, at the offsets io_uring.h gives them.
        Dictionary<string, long> c = Probe();
        string[] required = ["opcode", "flags", "ioprio", "fd", "off", "addr", "len", "rw_flags", "msg_flags", "accept_flags", "cancel_flags", "user_data", "buf_index", "buf_group", "personality", "file_index", "optlen", "addr3", "optval"];
        foreach (string field in required)
        {
            Assert.True(c.ContainsKey($"offset io_uring_sqe.{field}"), $"io_uring_sqe.{field} is not declared in Interop");
        }
        Assert.Equal(64, c["size io_uring_sqe"]);
        Assert.Equal(16, c["size io_uring_cqe"]);
    }

    [Fact]
    public void Constants_MatchHeaders()
    {
        Dictionary<string, long> c = Probe();
        var mismatches = new List<string>();
        foreach (FieldInfo f in Constants())
        {
            long value = Convert.ToInt64(f.GetRawConstantValue(), CultureInfo.InvariantCulture);
            if (c.TryGetValue($"const {f.Name}", out long expected))
            {
                if (value != expected)
                {
                    mismatches.Add($"{f.Name}: C {expected}, C# {value}");
                }
            }
            else if (NewerThanHeader.TryGetValue(f.Name, out long newer))
            {
                if (value != newer)
                {
                    mismatches.Add($"{f.Name} (newer than the header): expected {newer}, C# {value}");
                }
            }
            else
            {
                mismatches.Add($"{f.Name}: no header defines it and it is not listed in NewerThanHeader");
            }
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
        // Guard against checking nothing.
        Assert.True(c.Keys.Count(k => k.StartsWith("const IORING_OP_", StringComparison.Ordinal)) >= 10);
    }

    [Fact]
    public void UnsignedFileIndexAlloc_IsAllOnes()
    {
        // IORING_FILE_INDEX_ALLOC is (~0U): printed through long long it is 4294967295.
        Assert.Equal(4294967295L, Probe()["const IORING_FILE_INDEX_ALLOC"]);
    }

    [Fact]
    public void Errno_MatchesErrnoH()
    {
        Dictionary<string, long> c = Probe();
        foreach (Errno errno in Enum.GetValues<Errno>().Where(e => e != Errno.None))
        {
            Assert.True(c[$"errno {errno}"] == (int)errno, $"{errno}: C {c[$"errno {errno}"]}, C# {(int)errno}");
        }
    }

    [Fact]
    public void LayoutFactsTheEngineRelies_OnMatchHeaders()
    {
        Dictionary<string, long> c = Probe();
        // BufferRing keeps the shared tail in the resv field of the first entry.
        Assert.Equal(BufferRing.TailOffset, c["offset io_uring_buf_ring.tail"]);
        // SocketAddressConverter: a sockaddr_storage, and the lengths it writes for IPv4/IPv6.
        Assert.Equal(SocketAddressConverter.MaxSize, c["size sockaddr_storage"]);
        Assert.Equal(16, c["size sockaddr_in"]);
        Assert.Equal(28, c["size sockaddr_in6"]);
        Assert.Equal(110, c["size sockaddr_un"]);
        // EpollRing reads epoll_event at computed offsets (packed on x86-64) and statx's file type.
        Assert.Equal(Interop.EpollEventSize, c["size epoll_event"]);
        Assert.Equal(Interop.EpollEventDataOffset, c["offset epoll_event.data"]);
        Assert.Equal(System.Runtime.CompilerServices.Unsafe.SizeOf<Interop.statx_buffer>(), c["size statx"]);
        Assert.Equal(0x1C, c["offset statx.stx_mode"]);
        // Operation's native scratch area holds a msghdr and iovecs of the C sizes.
        int msghdrOffset = (int)typeof(Operation).GetField("MsghdrOffset", BindingFlags.NonPublic | BindingFlags.Static)!.GetRawConstantValue()!;
        int iovecOffset = (int)typeof(Operation).GetField("IovecOffset", BindingFlags.NonPublic | BindingFlags.Static)!.GetRawConstantValue()!;
        Assert.True(iovecOffset - msghdrOffset >= c["size msghdr"], "the msghdr slot of Operation's scratch area is too small");
        Assert.Equal(16, c["size iovec"]);
        Assert.Equal(0, msghdrOffset % 8);
        Assert.Equal(0, iovecOffset % 8);
    }
}
