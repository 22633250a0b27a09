// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MegaPipe.Internal;

// Converts between kernel sockaddr bytes and .NET endpoints.
internal static class SocketAddressConverter
{
    public const int MaxSize = 128; // sizeof(struct sockaddr_storage)

    public static EndPoint? ToEndPoint(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2)
        {
            return null;
        }
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);
        switch (family)
        {
            case Interop.AF_INET when sockaddr.Length >= 8:
                return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr.Slice(2)));
            case Interop.AF_INET6 when sockaddr.Length >= 28:
                return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), BinaryPrimitives.ReadUInt32LittleEndian(sockaddr.Slice(24))), BinaryPrimitives.ReadUInt16BigEndian(sockaddr.Slice(2)));
            case Interop.AF_UNIX:
                ReadOnlySpan<byte> path = sockaddr.Slice(2);
                if (path.IsEmpty)
                {
                    return null; // an unnamed (client) Unix socket
                }
                int end = path[0] == 0 ? path.Length : path.IndexOf((byte)0);
                if (end < 0)
                {
                    end = path.Length;
                }
                string text = path[0] == 0 ? "@" + Encoding.UTF8.GetString(path.Slice(1, end - 1)) : Encoding.UTF8.GetString(path.Slice(0, end));
                return text.Length == 0 ? null : new UnixDomainSocketEndPoint(text);
            default:
                return null;
        }
    }

    // Writes endPoint as a sockaddr into destination; returns its length.
    public static int Write(EndPoint endPoint, Span<byte> destination)
    {
        destination.Clear();
        switch (endPoint)
        {
            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetwork:
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Interop.AF_INET);
                BinaryPrimitives.WriteUInt16BigEndian(destination.Slice(2), (ushort)ip.Port);
                ip.Address.TryWriteBytes(destination.Slice(4, 4), out _);
                return 16;
            case IPEndPoint ip6 when ip6.AddressFamily == AddressFamily.InterNetworkV6:
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Interop.AF_INET6);
                BinaryPrimitives.WriteUInt16BigEndian(destination.Slice(2), (ushort)ip6.Port);
                ip6.Address.TryWriteBytes(destination.Slice(8, 16), out _);
                BinaryPrimitives.WriteUInt32LittleEndian(destination.Slice(24), (uint)ip6.Address.ScopeId);
                return 28;
            case UnixDomainSocketEndPoint unix:
                string path = unix.ToString();
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Interop.AF_UNIX);
                if (path.StartsWith('@'))
                {
                    int n = Encoding.UTF8.GetBytes(path.AsSpan(1), destination.Slice(3));
                    return 3 + n;
                }
                int written = Encoding.UTF8.GetBytes(path, destination.Slice(2, 107));
                return 2 + written + 1;
            default:
                throw new ArgumentException($"Unsupported endpoint type {endPoint.GetType()}.", nameof(endPoint));
        }
    }

    public static int FamilyOf(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint => Interop.AF_UNIX,
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } => Interop.AF_INET6,
        _ => Interop.AF_INET,
    };
}
