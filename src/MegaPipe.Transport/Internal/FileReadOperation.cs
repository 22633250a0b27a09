// Licensed under the MIT License. See LICENSE in the repository root.

using System.Threading.Tasks.Sources;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Transport.Internal;

// One IMegaPipeFileReader.ReadAsync: posted to the channel as a work item, awaited by the caller
// as a ValueTask, pooled by its reader once the caller has its result.
internal sealed class FileReadOperation : IValueTaskSource<int>, IChannelWorkItem
{
    private readonly ChannelFileReader _reader;
    private ManualResetValueTaskSourceCore<int> _core;

    public FileReadOperation(ChannelFileReader reader)
    {
        _reader = reader;
        _core.RunContinuationsAsynchronously = reader.RunContinuationsAsynchronously;
    }

    // What to read; set by Prepare, cleared when the result is taken.
    public SafeFileHandle? File { get; private set; }
    public Memory<byte> Buffer { get; private set; }
    public long Offset { get; private set; }

    public short Version => _core.Version;

    public void Prepare(SafeFileHandle file, Memory<byte> buffer, long offset)
    {
        File = file;
        Buffer = buffer;
        Offset = offset;
    }

    public void Execute(MegaPipeChannel channel) => _reader.Submit(this, channel);

    public void Complete(int result)
    {
        if (result >= 0)
        {
            _core.SetResult(result);
            return;
        }
        var errno = (Errno)(-result);
        var inner = new MegaPipeException("read", errno);
        _core.SetException(new IOException(inner.Message, inner));
    }

    public void Complete(Exception error) => _core.SetException(error);

    // The operation was never issued (posting failed): back to the pool unobserved.
    public void Abandon()
    {
        Clear();
        _core.Reset();
        _reader.Return(this);
    }

    public int GetResult(short token)
    {
        if (token != _core.Version)
        {
            // A second GetResult of an awaited ValueTask: the operation may already serve another read.
            throw new InvalidOperationException("The result of this file read was already taken.");
        }
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Clear();
            _core.Reset();
            _reader.Return(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);

    private void Clear()
    {
        File = null;
        Buffer = default;
    }
}
