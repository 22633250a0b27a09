// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace MegaPipe.Internal;

// Objects addressed by a slot index, reused rather than reallocated: the channel's operations
// (the index is the lower half of a CQE's user_data) and its handles (the index is in every
// MegaPipeHandle). An item is created once per slot, the first time the slot is used, and keeps
// its index for life; a freed slot is handed out again before a new one is used. The table only
// grows (doubling), so every slot below HighWater holds an item.
// Owner thread only, except InUse, which may be read from any thread.
internal sealed class SlotTable<T>
    where T : class
{
    // Creates the item of a slot the first time it is used.
    private readonly Func<int, T> _create;
    // Slot i holds the item with index i; null at and above _highWater.
    private T?[] _items;
    // Indices of freed slots, a stack: the most recently freed is reused first (warm in cache).
    private int[] _free;
    private int _freeCount;
    // Slots ever used.
    private int _highWater;
    // Slots handed out and not yet returned.
    private int _inUse;

    public SlotTable(int capacity, Func<int, T> create)
    {
        _create = create;
        _items = new T?[capacity];
        _free = new int[capacity];
    }

    // Slots ever used: every slot below it holds an item.
    public int HighWater => _highWater;

    // Items handed out and not yet returned (readable from any thread).
    public int InUse => Volatile.Read(ref _inUse);

    // The items of the slots ever used, for a final sweep (null for none).
    public ReadOnlySpan<T?> Items => _items.AsSpan(0, _highWater);

    // The item in slot index, which must be below HighWater (a user_data the channel made).
    public T this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            Debug.Assert((uint)index < (uint)_highWater, "a slot index the table never handed out");
            return _items[index]!;
        }
    }

    // The item in slot index, or null when no such slot was ever used (an index from outside).
    public T? TryGet(int index) => (uint)index < (uint)_highWater ? _items[index] : null;

    // A free slot's item: a freed one if any, else the next slot's, created now.
    public T Rent()
    {
        T item;
        if (_freeCount > 0)
        {
            item = _items[_free[--_freeCount]]!;
        }
        else
        {
            if (_highWater == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
                Array.Resize(ref _free, _items.Length);
            }
            item = _create(_highWater);
            _items[_highWater++] = item;
        }
        Volatile.Write(ref _inUse, _inUse + 1);
        return item;
    }

    // Frees the slot of an item Rent handed out (its index is the one it was created with).
    public void Return(int index)
    {
        Debug.Assert((uint)index < (uint)_highWater && _freeCount < _highWater, "returning a slot that was not handed out");
        _free[_freeCount++] = index;
        Volatile.Write(ref _inUse, _inUse - 1);
    }
}
