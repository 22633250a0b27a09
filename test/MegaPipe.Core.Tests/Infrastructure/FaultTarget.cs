namespace MegaPipe.Core.Tests.Infrastructure;

// The submissions a fault rule looks at.
internal enum FaultTarget : byte
{
    // The continuous receive (a multishot IORING_OP_RECV), each time it is armed.
    Receive,
    // Socket writes (IORING_OP_SEND, IORING_OP_SENDMSG): first submissions and continuations alike.
    Send,
}
