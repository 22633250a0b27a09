// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Transport.Internal;

// One registration of a file in a channel and the cookie of its events: it knows the single read
// in flight on that registration and completes it.
internal sealed class FileReadSlot : IChannelEventHandler
{
    private readonly ChannelFileReader _reader;
    // The read in flight on this registration, or null when idle.
    private FileReadOperation? _current;

    public FileReadSlot(ChannelFileReader reader) => _reader = reader;

    // The registration this slot belongs to (null while pooled) and its handle in the channel.
    public FileRegistration Registration { get; set; } = null!;
    public MegaPipeHandle Handle { get; set; }

    public void Begin(FileReadOperation op)
    {
        Debug.Assert(_current is null, "one read in flight per registration");
        _current = op;
    }

    // The read could not be issued: idle again, with nothing in flight.
    public void Abort()
    {
        _current = null;
        Registration.Release(this);
    }

    public void OnCompletion(in CompletionEvent completion)
    {
        if (completion.Command != ChannelCommand.ReadFile)
        {
            return;
        }
        FileReadOperation op = _current!;
        _current = null;
        Registration.Release(this);
        _reader.OnReadCompleted(Registration);
        // Last: with inline scheduling the caller's continuation runs right here and may read again.
        op.Complete(completion.Result);
    }
}
