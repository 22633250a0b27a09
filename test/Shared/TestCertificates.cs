// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// Self-signed certificates made in-process once per test run (the server's, ECDSA ones for SNI, a
/// client certificate), and their PEM files for command-line clients and servers.
/// </summary>
public static class TestCertificates
{
    private static readonly Lazy<X509Certificate2> s_rsa = new(() => CreateServer("localhost", ecdsa: false));
    private static readonly Lazy<X509Certificate2> s_ecdsa = new(() => CreateServer("ecdsa.test", ecdsa: true));
    private static readonly Lazy<X509Certificate2> s_alpha = new(() => CreateServer("alpha.test", ecdsa: true));
    private static readonly Lazy<X509Certificate2> s_beta = new(() => CreateServer("beta.test", ecdsa: true));
    private static readonly Lazy<X509Certificate2> s_client = new(() => CreateClient("MegaPipe test client"));
    private static readonly Lazy<string> s_directory = new(() =>
    {
        string path = Path.Combine(Path.GetTempPath(), "megapipe-test-certificates-" + Environment.ProcessId);
        System.IO.Directory.CreateDirectory(path);
        return path;
    });
    private static readonly ConcurrentDictionary<string, Lazy<(string Thumbprint, string Certificate, string Key)>> s_pem = new();

    /// <summary>RSA-2048, CN=localhost, SAN localhost, 127.0.0.1 and ::1 (the default server certificate, as the benchmarks use).</summary>
    public static X509Certificate2 Rsa => s_rsa.Value;

    /// <summary>ECDSA P-256 for ecdsa.test.</summary>
    public static X509Certificate2 Ecdsa => s_ecdsa.Value;

    /// <summary>ECDSA P-256 for alpha.test (SNI).</summary>
    public static X509Certificate2 Alpha => s_alpha.Value;

    /// <summary>ECDSA P-256 for beta.test (SNI).</summary>
    public static X509Certificate2 Beta => s_beta.Value;

    /// <summary>A self-signed client certificate (client authentication EKU).</summary>
    public static X509Certificate2 Client => s_client.Value;

    public static string Directory => s_directory.Value;

    /// <summary>
    /// Writes the certificate and its private key as PEM files, once per name (tests running at the
    /// same time share them rather than rewrite them under each other); returns their paths.
    /// </summary>
    public static (string Certificate, string Key) WritePem(X509Certificate2 certificate, string name)
    {
        (string thumbprint, string certificatePath, string keyPath) = s_pem.GetOrAdd(name, _ => new(() =>
        {
            string certificatePath = Path.Combine(Directory, name + ".crt");
            string keyPath = Path.Combine(Directory, name + ".key");
            File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
            using AsymmetricAlgorithm key = (AsymmetricAlgorithm?)certificate.GetRSAPrivateKey() ?? certificate.GetECDsaPrivateKey()!;
            File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
            return (certificate.Thumbprint, certificatePath, keyPath);
        })).Value;
        if (thumbprint != certificate.Thumbprint)
        {
            throw new InvalidOperationException($"PEM files '{name}' were already written for another certificate.");
        }
        return (certificatePath, keyPath);
    }

    public static X509Certificate2 CreateServer(string name, bool ecdsa)
    {
        using AsymmetricAlgorithm key = ecdsa ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        CertificateRequest request = key is RSA rsa
            ? new CertificateRequest("CN=" + name, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest("CN=" + name, (ECDsa)key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // server authentication
        return SelfSign(request);
    }

    private static X509Certificate2 CreateClient(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false)); // client authentication
        return SelfSign(request);
    }

    private static X509Certificate2 SelfSign(CertificateRequest request)
    {
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 ephemeral = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        // Through PKCS#12 so the private key is usable by SslStream, as a server and as a client certificate.
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
    }
}
