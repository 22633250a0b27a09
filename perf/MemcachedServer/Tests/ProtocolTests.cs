using System.Buffers;
using System.Text;
using MegaPipe.Memcached;

namespace MemcachedServer.Tests;

// The protocol on in-memory buffers: what memcaslap (and any memcached client) relies on, fed
// whole, byte by byte, and in chunks cut at every place.
public class ProtocolTests
{
    private const string Script =
        "set k1 5 0 5\r\nhello\r\n" +
        "get k1\r\n" +
        "set k2 0 0 3 noreply\r\nabc\r\n" +
        "gets k2 missing k1\r\n" +
        "delete k2\r\n" +
        "delete k2\r\n" +
        "add k1 0 0 1\r\nx\r\n" +
        "set n 0 0 2\r\n41\r\n" +
        "incr n 1\r\n" +
        "append k1 0 0 1\r\n!\r\n" +
        "get k1\r\n";

    private const string Expected =
        "STORED\r\n" +
        "VALUE k1 5 5\r\nhello\r\nEND\r\n" +
        "VALUE k2 0 3 2\r\nabc\r\nVALUE k1 5 5 1\r\nhello\r\nEND\r\n" +
        "DELETED\r\n" +
        "NOT_FOUND\r\n" +
        "NOT_STORED\r\n" +
        "STORED\r\n" +
        "42\r\n" +
        "STORED\r\n" +
        "VALUE k1 5 6\r\nhello!\r\nEND\r\n";

    [Fact]
    public void WholeScript() => Assert.Equal(Expected, Run(Script, Script.Length));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(13)]
    public void ScriptInChunks(int chunk) => Assert.Equal(Expected, Run(Script, chunk));

    [Fact]
    public void ValueTooLargeIsRefusedAndItsDataSkipped()
    {
        string value = new('v', 100);
        string output = Run($"set big 0 0 100\r\n{value}\r\nget big\r\nversion\r\n", 16, maxItemSize: 64);
        Assert.Equal("SERVER_ERROR object too large for cache\r\nEND\r\nVERSION 1.6.18-megapipe\r\n", output);
    }

    [Fact]
    public void BadDataChunkAndUnknownCommand()
    {
        // The block is "ab" + "cd" where "\r\n" belongs; what follows is read as commands: an empty line, then "bogus".
        Assert.Equal("CLIENT_ERROR bad data chunk\r\nERROR\r\nERROR\r\n", Run("set k 0 0 2\r\nabcd\r\nbogus\r\n", 5));
    }

    [Fact]
    public void LineWithoutEndClosesTheConnection()
    {
        var session = new MemcachedSession(new MemcachedStore(1 << 20));
        var output = new ArrayBufferWriter<byte>();
        var buffer = new ReadOnlySequence<byte>(new byte[MemcachedSession.MaxLineLength + 1]);
        Assert.False(session.Process(ref buffer, output));
    }

    [Fact]
    public void MemoryIsBoundedByEvictingTheLeastRecentlyUsed()
    {
        var store = new MemcachedStore(64 * 1024);
        var session = new MemcachedSession(store);
        var output = new ArrayBufferWriter<byte>();
        string value = new('v', 1024);
        for (int i = 0; i < 200; i++)
        {
            Feed(session, $"set key{i} 0 0 1024 noreply\r\n{value}\r\n", output);
            if (i == 100)
            {
                Feed(session, "get key0\r\n", output); // a hit moves key0 to the recently used end
            }
        }
        Assert.True(store.BytesUsed <= store.MemoryLimit);
        Assert.True(store.Evictions > 100);
        Assert.Null(store.Get("key1"u8));
        Assert.NotNull(store.Get("key199"u8));
    }

    [Fact]
    public void CasAndExpiry()
    {
        var time = new ManualTime();
        var store = new MemcachedStore(1 << 20, time);
        string output = Run(store, "set k 0 10 1\r\na\r\ngets k\r\ncas k 0 0 1 999\r\nb\r\ncas k 0 0 1 1\r\nc\r\nget k\r\n", 4);
        Assert.Equal("STORED\r\nVALUE k 0 1 1\r\na\r\nEND\r\nEXISTS\r\nSTORED\r\nVALUE k 0 1\r\nc\r\nEND\r\n", output);
        Run(store, "set t 0 2 1\r\nx\r\n", 64);
        time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal("END\r\n", Run(store, "get t\r\n", 64));
    }

    private static string Run(string input, int chunk, int maxItemSize = MemcachedSession.DefaultMaxItemSize)
        => Run(new MemcachedStore(1 << 20), input, chunk, maxItemSize);

    // Feeds the input `chunk` bytes at a time, keeping what the session did not consume, as the
    // connection handler does with the transport's pipe.
    private static string Run(MemcachedStore store, string input, int chunk, int maxItemSize = MemcachedSession.DefaultMaxItemSize)
    {
        var session = new MemcachedSession(store, maxItemSize);
        var output = new ArrayBufferWriter<byte>();
        byte[] bytes = Encoding.ASCII.GetBytes(input);
        byte[] pending = [];
        for (int i = 0; i < bytes.Length; i += chunk)
        {
            byte[] next = [.. pending, .. bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i))];
            var buffer = new ReadOnlySequence<byte>(next);
            Assert.True(session.Process(ref buffer, output));
            pending = buffer.ToArray();
        }
        Assert.Empty(pending);
        return Encoding.ASCII.GetString(output.WrittenSpan);
    }

    private static void Feed(MemcachedSession session, string input, ArrayBufferWriter<byte> output)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(input));
        Assert.True(session.Process(ref buffer, output));
        Assert.True(buffer.IsEmpty);
    }

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
