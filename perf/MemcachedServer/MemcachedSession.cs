using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace MegaPipe.Memcached;

// The memcached text protocol for one connection, independent of where the bytes come from.
// Process consumes every complete command at the start of the buffer and writes the answers; a
// command cut anywhere (in its line, or in its data block) stays in the buffer, or, for a data
// block, is copied as it arrives, until the rest comes. So a 1 MB value never needs 1 MB of
// unconsumed input: the transport's read-buffer limit cannot stall it.
//
// Supported: get, gets, set, add, replace, append, prepend, cas, delete, incr, decr, touch,
// flush_all (without a delay), version, verbosity, stats, quit; "noreply" on every update.
internal sealed class MemcachedSession(MemcachedStore store, int maxItemSize = MemcachedSession.DefaultMaxItemSize)
{
    public const int DefaultMaxItemSize = 1024 * 1024;
    // memcached's key limit is 250 bytes; a get may name many keys, so lines may be longer.
    public const int MaxLineLength = 8192;
    private const int MaxTokens = 24;

    private static long s_connections;
    private static readonly long s_started = Environment.TickCount64;

    private Pending? _pending;
    private long _swallow;
    private byte[]? _lineScratch;

    // True when Process wrote answers that still need a flush.
    public bool HasOutput { get; private set; }

    public static void Opened() => Interlocked.Increment(ref s_connections);

    public static void Closed() => Interlocked.Decrement(ref s_connections);

    // Returns false when the connection should be closed (quit, or a line that never ends).
    public bool Process(ref ReadOnlySequence<byte> buffer, IBufferWriter<byte> output)
    {
        HasOutput = false;
        while (true)
        {
            if (_swallow > 0)
            {
                long n = Math.Min(_swallow, buffer.Length);
                buffer = buffer.Slice(n);
                _swallow -= n;
                if (_swallow > 0)
                {
                    return true;
                }
                continue;
            }
            if (_pending is not null)
            {
                if (!FillPending(ref buffer, output))
                {
                    return true;
                }
                continue;
            }
            SequencePosition? eol = buffer.PositionOf((byte)'\n');
            if (eol is null)
            {
                if (buffer.Length > MaxLineLength)
                {
                    Write(output, "CLIENT_ERROR line too long\r\n"u8);
                    return false;
                }
                return true;
            }
            ReadOnlySequence<byte> lineSequence = buffer.Slice(0, eol.Value);
            buffer = buffer.Slice(buffer.GetPosition(1, eol.Value));
            if (lineSequence.Length > MaxLineLength)
            {
                Write(output, "CLIENT_ERROR line too long\r\n"u8);
                return false;
            }
            ReadOnlySpan<byte> line;
            if (lineSequence.IsSingleSegment)
            {
                line = lineSequence.FirstSpan;
            }
            else
            {
                // A line split across two buffers of the transport: rare, copy it.
                _lineScratch ??= new byte[MaxLineLength];
                lineSequence.CopyTo(_lineScratch);
                line = _lineScratch.AsSpan(0, (int)lineSequence.Length);
            }
            if (line.Length > 0 && line[^1] == '\r')
            {
                line = line[..^1];
            }
            if (!Execute(line, output))
            {
                return false;
            }
        }
    }

    private bool Execute(ReadOnlySpan<byte> line, IBufferWriter<byte> output)
    {
        Span<Range> tokens = stackalloc Range[MaxTokens];
        int count = Tokenize(line, tokens);
        if (count == 0)
        {
            Write(output, "ERROR\r\n"u8);
            return true;
        }
        ReadOnlySpan<byte> command = line[tokens[0]];
        switch (command)
        {
            case var c when c.SequenceEqual("get"u8):
                Get(line, tokens[..count], withCas: false, output);
                return true;
            case var c when c.SequenceEqual("gets"u8):
                Get(line, tokens[..count], withCas: true, output);
                return true;
            case var c when c.SequenceEqual("set"u8):
                BeginStore(StorageCommand.Set, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("add"u8):
                BeginStore(StorageCommand.Add, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("replace"u8):
                BeginStore(StorageCommand.Replace, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("append"u8):
                BeginStore(StorageCommand.Append, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("prepend"u8):
                BeginStore(StorageCommand.Prepend, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("cas"u8):
                BeginStore(StorageCommand.Cas, line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("delete"u8):
                Delete(line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("incr"u8) || c.SequenceEqual("decr"u8):
                Arithmetic(line, tokens[..count], c[0] == 'i', output);
                return true;
            case var c when c.SequenceEqual("touch"u8):
                Touch(line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("flush_all"u8):
                FlushAll(line, tokens[..count], output);
                return true;
            case var c when c.SequenceEqual("version"u8):
                Write(output, "VERSION 1.6.18-megapipe\r\n"u8);
                return true;
            case var c when c.SequenceEqual("verbosity"u8):
                Reply(output, NoReply(line, tokens[..count]), "OK\r\n"u8);
                return true;
            case var c when c.SequenceEqual("stats"u8):
                Stats(output);
                return true;
            case var c when c.SequenceEqual("quit"u8):
                return false;
            default:
                Write(output, "ERROR\r\n"u8);
                return true;
        }
    }

    private void Get(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, bool withCas, IBufferWriter<byte> output)
    {
        if (tokens.Length < 2)
        {
            Write(output, "ERROR\r\n"u8);
            return;
        }
        Span<byte> cas = stackalloc byte[24];
        for (int i = 1; i < tokens.Length; i++)
        {
            ReadOnlySpan<byte> key = line[tokens[i]];
            if (key.Length > MemcachedStore.MaxKeyLength)
            {
                Write(output, "CLIENT_ERROR bad command line format\r\n"u8);
                return;
            }
            if (store.Get(key) is not { } item)
            {
                continue;
            }
            if (withCas)
            {
                // "VALUE <key> <flags> <bytes> <cas>\r\n": the stored header without its "\r\n", then the cas.
                Write(output, item.Header.AsSpan(0, item.Header.Length - 2));
                cas[0] = (byte)' ';
                Utf8Formatter.TryFormat(item.Cas, cas[1..], out int written);
                cas[written + 1] = (byte)'\r';
                cas[written + 2] = (byte)'\n';
                Write(output, cas[..(written + 3)]);
            }
            else
            {
                Write(output, item.Header);
            }
            Write(output, item.Data);
        }
        Write(output, "END\r\n"u8);
    }

    // Parses "<command> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]" and waits for the data block.
    private void BeginStore(StorageCommand command, ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, IBufferWriter<byte> output)
    {
        int required = command == StorageCommand.Cas ? 6 : 5;
        bool noreply = tokens.Length == required + 1 && line[tokens[^1]].SequenceEqual("noreply"u8);
        if (tokens.Length != required && !noreply)
        {
            Write(output, "ERROR\r\n"u8);
            return;
        }
        ReadOnlySpan<byte> key = line[tokens[1]];
        ulong cas = 0;
        if (!TryParseInt(line[tokens[4]], out long bytes) || bytes < 0)
        {
            Write(output, "CLIENT_ERROR bad command line format\r\n"u8);
            return;
        }
        if (key.Length > MemcachedStore.MaxKeyLength
            || !Utf8Parser.TryParse(line[tokens[2]], out uint flags, out int used) || used != line[tokens[2]].Length
            || !TryParseInt(line[tokens[3]], out long exptime)
            || (command == StorageCommand.Cas && (!Utf8Parser.TryParse(line[tokens[5]], out cas, out used) || used != line[tokens[5]].Length)))
        {
            // The length is known: skip the data block so that it is not read as commands.
            Write(output, "CLIENT_ERROR bad command line format\r\n"u8);
            _swallow = bytes + 2;
            return;
        }
        if (bytes > maxItemSize)
        {
            Write(output, "SERVER_ERROR object too large for cache\r\n"u8);
            _swallow = bytes + 2;
            return;
        }
        _pending = new Pending(command, key.ToArray(), flags, exptime, cas, noreply, new byte[bytes + 2]);
    }

    // Copies what has arrived of the pending data block; stores the item once it is complete.
    private bool FillPending(ref ReadOnlySequence<byte> buffer, IBufferWriter<byte> output)
    {
        Pending p = _pending!;
        int n = (int)Math.Min(p.Data.Length - p.Filled, buffer.Length);
        buffer.Slice(0, n).CopyTo(p.Data.AsSpan(p.Filled));
        buffer = buffer.Slice(n);
        p.Filled += n;
        if (p.Filled < p.Data.Length)
        {
            return false;
        }
        _pending = null;
        if (p.Data[^2] != '\r' || p.Data[^1] != '\n')
        {
            Write(output, "CLIENT_ERROR bad data chunk\r\n"u8);
            return true;
        }
        StoreResult result = store.Store(p.Command, p.Key, p.Flags, p.Exptime, p.Cas, p.Data);
        Reply(output, p.NoReply, result switch
        {
            StoreResult.Stored => "STORED\r\n"u8,
            StoreResult.NotStored => "NOT_STORED\r\n"u8,
            StoreResult.Exists => "EXISTS\r\n"u8,
            _ => "NOT_FOUND\r\n"u8,
        });
        return true;
    }

    private void Delete(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, IBufferWriter<byte> output)
    {
        bool noreply = NoReply(line, tokens);
        int args = tokens.Length - (noreply ? 1 : 0);
        // "delete <key> 0" is an old form memcached still accepts; any other time is an error.
        if (args < 2 || args > 3 || (args == 3 && !line[tokens[2]].SequenceEqual("0"u8)))
        {
            Write(output, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"u8);
            return;
        }
        Reply(output, noreply, store.Delete(line[tokens[1]]) ? "DELETED\r\n"u8 : "NOT_FOUND\r\n"u8);
    }

    private void Arithmetic(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, bool increment, IBufferWriter<byte> output)
    {
        bool noreply = NoReply(line, tokens);
        if (tokens.Length - (noreply ? 1 : 0) != 3)
        {
            Write(output, "ERROR\r\n"u8);
            return;
        }
        if (!Utf8Parser.TryParse(line[tokens[2]], out ulong delta, out int used) || used != line[tokens[2]].Length)
        {
            Write(output, "CLIENT_ERROR invalid numeric delta argument\r\n"u8);
            return;
        }
        ulong? value = store.Arithmetic(line[tokens[1]], increment, delta, out bool numeric);
        if (!numeric)
        {
            Write(output, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"u8);
        }
        else if (value is null)
        {
            Reply(output, noreply, "NOT_FOUND\r\n"u8);
        }
        else if (!noreply)
        {
            Write(output, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{value.Value}\r\n")));
        }
    }

    private void Touch(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, IBufferWriter<byte> output)
    {
        bool noreply = NoReply(line, tokens);
        if (tokens.Length - (noreply ? 1 : 0) != 3 || !TryParseInt(line[tokens[2]], out long exptime))
        {
            Write(output, "ERROR\r\n"u8);
            return;
        }
        Reply(output, noreply, store.Touch(line[tokens[1]], exptime) ? "TOUCHED\r\n"u8 : "NOT_FOUND\r\n"u8);
    }

    private void FlushAll(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens, IBufferWriter<byte> output)
    {
        bool noreply = NoReply(line, tokens);
        if (tokens.Length - (noreply ? 1 : 0) > 1)
        {
            // A delayed flush is not implemented: refuse it rather than flush at the wrong time.
            Write(output, "CLIENT_ERROR flush_all with a delay is not supported\r\n"u8);
            return;
        }
        store.FlushAll();
        Reply(output, noreply, "OK\r\n"u8);
    }

    private void Stats(IBufferWriter<byte> output)
    {
        var sb = new StringBuilder();
        void Stat(string name, object value) => sb.Append(CultureInfo.InvariantCulture, $"STAT {name} {value}\r\n");
        Stat("pid", Environment.ProcessId);
        Stat("uptime", (Environment.TickCount64 - s_started) / 1000);
        Stat("time", DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Stat("version", "1.6.18-megapipe");
        Stat("curr_connections", Interlocked.Read(ref s_connections));
        Stat("cmd_get", store.GetHits + store.GetMisses);
        Stat("cmd_set", store.Sets);
        Stat("get_hits", store.GetHits);
        Stat("get_misses", store.GetMisses);
        Stat("curr_items", store.Count);
        Stat("bytes", store.BytesUsed);
        Stat("limit_maxbytes", store.MemoryLimit);
        Stat("evictions", store.Evictions);
        sb.Append("END\r\n");
        Write(output, Encoding.ASCII.GetBytes(sb.ToString()));
    }

    private void Reply(IBufferWriter<byte> output, bool noreply, ReadOnlySpan<byte> text)
    {
        if (!noreply)
        {
            Write(output, text);
        }
    }

    private void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        output.Write(bytes);
        HasOutput = true;
    }

    private static bool NoReply(ReadOnlySpan<byte> line, ReadOnlySpan<Range> tokens)
        => tokens.Length > 1 && line[tokens[^1]].SequenceEqual("noreply"u8);

    private static bool TryParseInt(ReadOnlySpan<byte> text, out long value)
        => Utf8Parser.TryParse(text, out value, out int used) && used == text.Length;

    // Splits on spaces (several in a row count as one). A line with more tokens than MaxTokens
    // keeps the rest in the last token, which then fails as a key or a number.
    private static int Tokenize(ReadOnlySpan<byte> line, Span<Range> tokens)
    {
        int count = 0, i = 0;
        while (i < line.Length && count < tokens.Length)
        {
            while (i < line.Length && line[i] == ' ')
            {
                i++;
            }
            if (i == line.Length)
            {
                break;
            }
            int start = i;
            if (count == tokens.Length - 1)
            {
                i = line.Length;
            }
            else
            {
                while (i < line.Length && line[i] != ' ')
                {
                    i++;
                }
            }
            tokens[count++] = new Range(start, i);
        }
        return count;
    }

    private sealed class Pending(StorageCommand command, byte[] key, uint flags, long exptime, ulong cas, bool noReply, byte[] data)
    {
        public StorageCommand Command { get; } = command;
        public byte[] Key { get; } = key;
        public uint Flags { get; } = flags;
        public long Exptime { get; } = exptime;
        public ulong Cas { get; } = cas;
        public bool NoReply { get; } = noReply;
        public byte[] Data { get; } = data;
        public int Filled { get; set; }
    }
}
