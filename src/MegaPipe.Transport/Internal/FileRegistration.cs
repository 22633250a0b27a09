// Licensed under the MIT License. See LICENSE in the repository root.

using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Transport.Internal;

// One file's registrations in a channel (channel thread only). A registration carries one read at
// a time, because its cookie (the slot) is how a completion finds its read, and reads of a file may
// complete in any order; concurrent reads of the same file take more slots.
internal sealed class FileRegistration
{
    // Every slot registered for this file; idle ones are also on _idle.
    private readonly List<FileReadSlot> _slots = new(1);
    private readonly Stack<FileReadSlot> _idle = new(1);

    // The file; null while the registration waits in its reader's pool.
    public SafeFileHandle File { get; set; } = null!;

    // Reads of this file in flight.
    public int InFlight => _slots.Count - _idle.Count;

    // An idle slot of this file, if one is free.
    public bool TryAcquireIdle([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FileReadSlot? slot) => _idle.TryPop(out slot);

    // Registers the file once more, for one more read in flight.
    public FileReadSlot AddSlot(MegaPipeChannel channel, FileReadSlot slot)
    {
        slot.Handle = channel.Register(File, HandleKind.File, slot);
        slot.Registration = this;
        _slots.Add(slot);
        return slot;
    }

    public void Release(FileReadSlot slot) => _idle.Push(slot);

    // Unregisters every slot (all idle): the channel drops its references on the handle. The slots
    // go back to the reader's pool.
    public void UnregisterAll(MegaPipeChannel channel, Stack<FileReadSlot> freeSlots)
    {
        System.Diagnostics.Debug.Assert(InFlight == 0, "only idle registrations are unregistered");
        foreach (FileReadSlot slot in _slots)
        {
            if (channel.IsOpen(slot.Handle))
            {
                channel.Unregister(slot.Handle);
            }
            slot.Handle = default;
            slot.Registration = null!;
            freeSlots.Push(slot);
        }
        _slots.Clear();
        _idle.Clear();
        File = null!;
    }
}
