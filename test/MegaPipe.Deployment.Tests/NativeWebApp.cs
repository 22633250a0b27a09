namespace MegaPipe.Deployment.Tests;

/// <summary>samples/WebApp published natively, once for the tests of <see cref="NativeWebAppCollection"/>.</summary>
public sealed class NativeWebApp() : NativeSample("WebApp");

[CollectionDefinition(Name)]
public sealed class NativeWebAppCollection : ICollectionFixture<NativeWebApp>
{
    public const string Name = "native WebApp";
}
