// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>What a registered handle refers to; it decides which kernel operation serves each command.</summary>
public enum HandleKind
{
    /// <summary>A connected stream socket (TCP or Unix domain).</summary>
    Socket,
    /// <summary>A listening socket.</summary>
    Listener,
    /// <summary>A pipe or other stream file read and written at the current position.</summary>
    Pipe,
    /// <summary>A regular file read and written at explicit offsets.</summary>
    File,
}
