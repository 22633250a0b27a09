// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Transport.Internal;

// File reads on one channel (the IMegaPipeFileReader and IMegaPipeChannelFeature of its
// connections). A caller on any thread rents a FileReadOperation; on the channel thread the
// operation takes a registration slot of its file and issues ReadFile; the slot, the cookie of
// that registration, completes the operation when the ReadFile event arrives.
//
// A file's registrations are shared by all reads of it on this channel (concurrent downloads of
// one file reuse them) and dropped when its last read completes. They are not kept longer because
// a registration holds a reference on the SafeFileHandle: while it does, the caller's Dispose
// cannot close the descriptor, and SafeHandle offers no way to see that Dispose happened.
internal sealed class ChannelFileReader : IMegaPipeFileReader, IMegaPipeChannelFeature
{
    // Pooled operations kept per channel.
    private const int MaxPooledOperations = 256;

    private readonly ChannelThread _thread;
    private readonly ConcurrentQueue<FileReadOperation> _pool = new();
    // Operations in _pool (approximate: bounds the pool, nothing more).
    private int _pooledCount;
    // ReadFile commands issued (written on the channel thread, read anywhere).
    private long _readCommands;
    // _files.Count, for readers on other threads.
    private int _registeredFiles;

    // ---- channel-thread state ----
    // The registrations of each file with reads in flight on this channel, by handle identity.
    private readonly Dictionary<SafeFileHandle, FileRegistration> _files = new(ReferenceEqualityComparer.Instance);
    // Registrations and slots not in use, so a read of an idle file allocates nothing.
    private readonly Stack<FileRegistration> _freeRegistrations = new();
    private readonly Stack<FileReadSlot> _freeSlots = new();

    public ChannelFileReader(ChannelThread thread)
    {
        _thread = thread;
        RunContinuationsAsynchronously = !thread.Options.UnsafeInlineScheduling;
    }

    // Without inline scheduling, application continuations must leave the channel thread.
    public bool RunContinuationsAsynchronously { get; }

    public int ChannelIndex => _thread.Index;

    public bool IsChannelThread => _thread.Channel.IsOwnerThread;

    public ChannelCounters Counters => _thread.Counters;

    public long DispatchCount => _thread.DispatchCount;

    public IMegaPipeFileReader FileReader => this;

    public long ReadCommands => Volatile.Read(ref _readCommands);

    public int RegisteredFiles => Volatile.Read(ref _registeredFiles);

    public ValueTask<int> ReadAsync(SafeFileHandle file, Memory<byte> buffer, long offset)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ObjectDisposedException.ThrowIf(file.IsClosed, file);
        if (file.IsInvalid)
        {
            throw new ArgumentException("The file handle is invalid.", nameof(file));
        }
        if (buffer.IsEmpty)
        {
            return new ValueTask<int>(0);
        }
        FileReadOperation op = Rent();
        op.Prepare(file, buffer, offset);
        short version = op.Version;
        MegaPipeChannel channel = _thread.Channel;
        if (channel.IsOwnerThread)
        {
            // Inline scheduling: already on the channel thread, issue the command now (it joins this turn's batch).
            Submit(op, channel);
        }
        else
        {
            try
            {
                _thread.Post(op);
            }
            catch (ObjectDisposedException)
            {
                op.Abandon();
                throw;
            }
        }
        return new ValueTask<int>(op, version);
    }

    // Channel thread: issues the read of a posted (or inline) operation.
    public void Submit(FileReadOperation op, MegaPipeChannel channel)
    {
        Debug.Assert(channel.IsOwnerThread, "file reads are issued on the channel thread");
        FileReadSlot slot;
        try
        {
            slot = AcquireSlot(op.File!, channel);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException or ArgumentException)
        {
            op.Complete(e);
            return;
        }
        slot.Begin(op);
        try
        {
            channel.ReadFile(slot.Handle, op.Buffer, op.Offset);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
        {
            // The buffer could not be pinned, say: nothing reached the kernel.
            slot.Abort();
            ReleaseIfIdle(slot.Registration);
            op.Complete(e);
            return;
        }
        Volatile.Write(ref _readCommands, _readCommands + 1);
        // An in-flight read keeps the channel thread running through a stop.
        _thread.Registrations++;
    }

    // Channel thread: a slot's read completed and the slot is idle again.
    public void OnReadCompleted(FileRegistration registration)
    {
        _thread.Registrations--;
        ReleaseIfIdle(registration);
    }

    private void ReleaseIfIdle(FileRegistration registration)
    {
        if (registration.InFlight == 0)
        {
            // No read of this file left on the channel: release the handle (a disposed one closes now).
            _files.Remove(registration.File);
            registration.UnregisterAll(_thread.Channel, _freeSlots);
            _freeRegistrations.Push(registration);
            Volatile.Write(ref _registeredFiles, _files.Count);
        }
    }

    private FileReadSlot AcquireSlot(SafeFileHandle file, MegaPipeChannel channel)
    {
        if (_files.TryGetValue(file, out FileRegistration? registration))
        {
            return registration.TryAcquireIdle(out FileReadSlot? idle) ? idle : registration.AddSlot(channel, SpareSlot());
        }
        // Register takes a reference on the handle; it throws ObjectDisposedException if the caller closed it meanwhile.
        ObjectDisposedException.ThrowIf(file.IsClosed, file);
        registration = _freeRegistrations.TryPop(out FileRegistration? free) ? free : new FileRegistration();
        registration.File = file;
        FileReadSlot slot;
        try
        {
            slot = registration.AddSlot(channel, SpareSlot());
        }
        catch
        {
            registration.File = null!;
            _freeRegistrations.Push(registration);
            throw;
        }
        _files.Add(file, registration);
        Volatile.Write(ref _registeredFiles, _files.Count);
        return slot;
    }

    private FileReadSlot SpareSlot() => _freeSlots.TryPop(out FileReadSlot? slot) ? slot : new FileReadSlot(this);

    private FileReadOperation Rent()
    {
        if (_pool.TryDequeue(out FileReadOperation? op))
        {
            Interlocked.Decrement(ref _pooledCount);
            return op;
        }
        return new FileReadOperation(this);
    }

    public void Return(FileReadOperation op)
    {
        if (Interlocked.Increment(ref _pooledCount) <= MaxPooledOperations)
        {
            _pool.Enqueue(op);
        }
        else
        {
            Interlocked.Decrement(ref _pooledCount);
        }
    }
}
