using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;

namespace MegaPipe.Memcached;

// One stored object. Immutable once published: a set replaces the item, so a reader that took the
// reference under the lock can copy its bytes to a connection after releasing the lock.
internal sealed class Item
{
    public Item(byte[] key, uint flags, long expiresAt, ulong cas, byte[] data)
    {
        Key = key;
        Flags = flags;
        ExpiresAt = expiresAt;
        Cas = cas;
        Data = data;
        Header = MemcachedStore.FormatHeader(key, flags, data.Length - 2);
    }

    public byte[] Key { get; }
    public uint Flags { get; }
    // Milliseconds on Environment.TickCount64; 0 never expires.
    public long ExpiresAt { get; set; }
    public ulong Cas { get; }
    // The value followed by "\r\n", exactly as a get answers it.
    public byte[] Data { get; }
    // "VALUE <key> <flags> <bytes>\r\n", formatted once at store time instead of on every get.
    public byte[] Header { get; }
    public int ValueLength => Data.Length - 2;

    // What the memory limit counts: the arrays plus a fixed charge for the objects and the index.
    public long Footprint => Key.Length + Data.Length + Header.Length + 160;

    // The LRU list: Newer towards the head (most recently used), Older towards the tail.
    public Item? Newer;
    public Item? Older;
}

internal enum StoreResult
{
    Stored,
    NotStored,
    Exists,
    NotFound,
}

// The object store: one dictionary and one LRU list behind one lock, as memcached had when the
// paper measured it ("the object store is shared by all cores with a global lock"). Memory is
// bounded: storing beyond the limit evicts from the least recently used end.
internal sealed class MemcachedStore(long memoryLimit, TimeProvider? time = null)
{
    public const int MaxKeyLength = 250;
    private const long RelativeExpiryLimit = 60 * 60 * 24 * 30; // memcached: larger values are Unix times

    private readonly Lock _lock = new();
    private readonly Dictionary<byte[], Item> _items = new(KeyComparer.Instance);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private Item? _head;
    private Item? _tail;
    private ulong _cas;

    public long MemoryLimit { get; } = memoryLimit;
    public long BytesUsed { get; private set; }
    public long Evictions { get; private set; }
    public long GetHits { get; private set; }
    public long GetMisses { get; private set; }
    public long Sets { get; private set; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _items.Count;
            }
        }
    }

    public Item? Get(ReadOnlySpan<byte> key)
    {
        lock (_lock)
        {
            Item? item = Find(key);
            if (item is null)
            {
                GetMisses++;
                return null;
            }
            GetHits++;
            MoveToHead(item);
            return item;
        }
    }

    // `key` and `data` (the value and its "\r\n") become the item's own.
    public StoreResult Store(StorageCommand command, byte[] key, uint flags, long exptime, ulong casUnique, byte[] data)
    {
        lock (_lock)
        {
            Sets++;
            Item? existing = Find(key);
            switch (command)
            {
                case StorageCommand.Add when existing is not null:
                    MoveToHead(existing);
                    return StoreResult.NotStored;
                case StorageCommand.Replace or StorageCommand.Append or StorageCommand.Prepend when existing is null:
                    return StoreResult.NotStored;
                case StorageCommand.Cas when existing is null:
                    return StoreResult.NotFound;
                case StorageCommand.Cas when existing.Cas != casUnique:
                    return StoreResult.Exists;
            }
            byte[] keyBytes = existing?.Key ?? key;
            if (command is StorageCommand.Append or StorageCommand.Prepend)
            {
                // The combined value keeps the existing item's flags and expiry, as memcached does.
                byte[] combined = new byte[existing!.ValueLength + data.Length];
                byte[] first = command == StorageCommand.Append ? existing.Data : data;
                byte[] second = command == StorageCommand.Append ? data : existing.Data;
                int firstLength = first.Length - 2;
                first.AsSpan(0, firstLength).CopyTo(combined);
                second.CopyTo(combined.AsSpan(firstLength));
                data = combined;
                flags = existing.Flags;
            }
            long expiresAt = command is StorageCommand.Append or StorageCommand.Prepend ? existing!.ExpiresAt : ExpiresAt(exptime);
            var item = new Item(keyBytes, flags, expiresAt, ++_cas, data);
            if (existing is not null)
            {
                Unlink(existing);
            }
            if (item.Footprint > MemoryLimit)
            {
                return StoreResult.NotStored;
            }
            Link(item);
            return StoreResult.Stored;
        }
    }

    public bool Delete(ReadOnlySpan<byte> key)
    {
        lock (_lock)
        {
            Item? item = Find(key);
            if (item is null)
            {
                return false;
            }
            Unlink(item);
            return true;
        }
    }

    public bool Touch(ReadOnlySpan<byte> key, long exptime)
    {
        lock (_lock)
        {
            Item? item = Find(key);
            if (item is null)
            {
                return false;
            }
            item.ExpiresAt = ExpiresAt(exptime);
            MoveToHead(item);
            return true;
        }
    }

    // incr/decr: null when the key is missing; false in `numeric` when the value is not a number.
    public ulong? Arithmetic(ReadOnlySpan<byte> key, bool increment, ulong delta, out bool numeric)
    {
        lock (_lock)
        {
            numeric = true;
            Item? item = Find(key);
            if (item is null)
            {
                return null;
            }
            ReadOnlySpan<byte> value = item.Data.AsSpan(0, item.ValueLength).TrimEnd((byte)' ');
            if (!Utf8Parser.TryParse(value, out ulong current, out int consumed) || consumed != value.Length)
            {
                numeric = false;
                return null;
            }
            // incr wraps at 64 bits; decr stops at 0 (memcached's rules).
            ulong next = increment ? unchecked(current + delta) : current < delta ? 0 : current - delta;
            byte[] data = System.Text.Encoding.ASCII.GetBytes($"{next}\r\n");
            var replaced = new Item(item.Key, item.Flags, item.ExpiresAt, ++_cas, data);
            Unlink(item);
            Link(replaced);
            return next;
        }
    }

    public void FlushAll()
    {
        lock (_lock)
        {
            _items.Clear();
            _head = _tail = null;
            BytesUsed = 0;
        }
    }

    private Item? Find(ReadOnlySpan<byte> key)
    {
        Dictionary<byte[], Item>.AlternateLookup<ReadOnlySpan<byte>> lookup = _items.GetAlternateLookup<ReadOnlySpan<byte>>();
        if (!lookup.TryGetValue(key, out Item? item))
        {
            return null;
        }
        if (item.ExpiresAt != 0 && item.ExpiresAt <= _time.GetTimestamp() * 1000 / _time.TimestampFrequency)
        {
            Unlink(item);
            return null;
        }
        return item;
    }

    private long ExpiresAt(long exptime)
    {
        long now = _time.GetTimestamp() * 1000 / _time.TimestampFrequency;
        if (exptime == 0)
        {
            return 0;
        }
        if (exptime < 0)
        {
            return 1; // already expired
        }
        if (exptime <= RelativeExpiryLimit)
        {
            return now + exptime * 1000;
        }
        // An absolute Unix time.
        long remaining = exptime - _time.GetUtcNow().ToUnixTimeSeconds();
        return remaining <= 0 ? 1 : now + remaining * 1000;
    }

    private void Link(Item item)
    {
        _items[item.Key] = item;
        item.Older = _head;
        item.Newer = null;
        if (_head is not null)
        {
            _head.Newer = item;
        }
        _head = item;
        _tail ??= item;
        BytesUsed += item.Footprint;
        while (BytesUsed > MemoryLimit && _tail is not null && _tail != item)
        {
            Unlink(_tail);
            Evictions++;
        }
    }

    private void Unlink(Item item)
    {
        _items.Remove(item.Key);
        if (item.Newer is not null)
        {
            item.Newer.Older = item.Older;
        }
        else
        {
            _head = item.Older;
        }
        if (item.Older is not null)
        {
            item.Older.Newer = item.Newer;
        }
        else
        {
            _tail = item.Newer;
        }
        item.Newer = item.Older = null;
        BytesUsed -= item.Footprint;
    }

    private void MoveToHead(Item item)
    {
        if (_head == item)
        {
            return;
        }
        // Unlink from the list only (the dictionary keeps it), then push at the head.
        item.Newer!.Older = item.Older;
        if (item.Older is not null)
        {
            item.Older.Newer = item.Newer;
        }
        else
        {
            _tail = item.Newer;
        }
        item.Older = _head;
        item.Newer = null;
        _head!.Newer = item;
        _head = item;
    }

    public static byte[] FormatHeader(byte[] key, uint flags, int bytes)
    {
        Span<byte> buffer = stackalloc byte[MaxKeyLength + 48];
        "VALUE "u8.CopyTo(buffer);
        int n = 6;
        key.CopyTo(buffer[n..]);
        n += key.Length;
        buffer[n++] = (byte)' ';
        Utf8Formatter.TryFormat(flags, buffer[n..], out int w);
        n += w;
        buffer[n++] = (byte)' ';
        Utf8Formatter.TryFormat(bytes, buffer[n..], out w);
        n += w;
        buffer[n++] = (byte)'\r';
        buffer[n++] = (byte)'\n';
        return buffer[..n].ToArray();
    }

    // Keys compare as bytes; lookups take a span of the request buffer, so a get allocates no key.
    private sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode([DisallowNull] byte[] obj) => Hash(obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

        private static int Hash(ReadOnlySpan<byte> key)
        {
            var hash = new HashCode();
            hash.AddBytes(key);
            return hash.ToHashCode();
        }
    }
}

internal enum StorageCommand
{
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}
