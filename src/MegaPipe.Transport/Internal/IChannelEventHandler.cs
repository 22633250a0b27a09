// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport.Internal;

// The cookie of every handle the transport registers: completions are routed to it.
internal interface IChannelEventHandler
{
    void OnCompletion(in CompletionEvent completion);
}
