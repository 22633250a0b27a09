using MegaPipe.Transport;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.StaticServer;

// File contents are read through the connection's MegaPipe channel when there is one (an io_uring
// read command issued by the channel thread that owns the connection), and through RandomAccess
// (a read on the thread pool) on other transports.
internal readonly struct FileReads(IMegaPipeFileReader? channel, StaticServerStats stats)
{
    public ValueTask<int> ReadAsync(SafeFileHandle file, Memory<byte> buffer, long offset)
    {
        if (channel is not null)
        {
            stats.ChannelRead();
            return channel.ReadAsync(file, buffer, offset);
        }
        stats.FallbackRead();
        return RandomAccess.ReadAsync(file, buffer, offset);
    }

    // Fills buffer from offset; false when the file ended first.
    public async ValueTask<bool> ReadExactlyAsync(SafeFileHandle file, Memory<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            int n = await ReadAsync(file, buffer, offset).ConfigureAwait(false);
            if (n <= 0)
            {
                return false;
            }
            buffer = buffer[n..];
            offset += n;
        }
        return true;
    }
}
