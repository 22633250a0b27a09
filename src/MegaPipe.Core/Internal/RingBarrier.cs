// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;

namespace MegaPipe.Internal;

// The memory-ordering vocabulary for the rings we share with the kernel, named after liburing's
// barrier.h. On x86-64 acquire and release compile to plain moves, but they also stop the JIT
// from reordering, which is what the ring protocol needs.
internal static unsafe class RingBarrier
{
    // A plain load the compiler must not cache or tear (READ_ONCE).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ReadOnce(uint* location) => Volatile.Read(ref *location);

    // A plain store the compiler must not elide or tear (WRITE_ONCE).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteOnce(uint* location, uint value) => Volatile.Write(ref *location, value);

    // smp_load_acquire: later reads see everything written before the matching release.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint LoadAcquire(uint* location) => Volatile.Read(ref *location);
    public static ushort LoadAcquire(ushort* location) => Volatile.Read(ref *location);

    // smp_store_release: everything written before becomes visible before this store.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreRelease(uint* location, uint value) => Volatile.Write(ref *location, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreRelease(ushort* location, ushort value) => Volatile.Write(ref *location, value);

    // smp_mb: orders a store before a later load (needed where we publish, then test a flag the kernel sets).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FullFence() => Interlocked.MemoryBarrier();
}
