namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>samples/StaticServer published natively, once for the tests that use it.</summary>
public sealed class NativeStaticServer() : NativeSample("StaticServer");
