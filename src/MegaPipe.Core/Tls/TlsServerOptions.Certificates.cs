// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MegaPipe.Tls;

// Loaders for the two file forms Kestrel and nginx accept: PEM certificate + key files, and PKCS#12 (PFX).
public sealed partial class TlsServerOptions
{
    /// <summary>
    /// Loads the server certificate from PEM files, as nginx's <c>ssl_certificate</c> / <c>ssl_certificate_key</c>:
    /// the certificate file holds the leaf first and then any intermediates (sent as the chain); the key file holds an
    /// RSA or EC private key (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with <paramref name="password"/>). Sets
    /// <see cref="ServerCertificate"/>, <see cref="ServerPrivateKey"/> and <see cref="ServerCertificateChain"/>.
    /// Whether the key matches the certificate is checked when the context is created.
    /// </summary>
    /// <exception cref="ArgumentException">A file holds no certificate or no supported private key.</exception>
    public TlsServerOptions UsePemFiles(string certificatePath, string keyPath, string? password = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificatePath);
        ArgumentException.ThrowIfNullOrEmpty(keyPath);
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(certificatePath);
        if (certificates.Count == 0)
        {
            throw new ArgumentException($"The file '{certificatePath}' holds no PEM certificate.", nameof(certificatePath));
        }
        string pem = File.ReadAllText(keyPath);
        AsymmetricAlgorithm key = ImportPemKey(pem, password, keyPath);
        ServerCertificate = certificates[0];
        ServerPrivateKey = key;
        var chain = new X509Certificate2Collection();
        for (int i = 1; i < certificates.Count; i++)
        {
            chain.Add(certificates[i]);
        }
        ServerCertificateChain = chain.Count == 0 ? null : chain;
        return this;
    }

    /// <summary>
    /// Loads the server certificate and its private key from a PKCS#12 (PFX) file; other certificates in the file
    /// become the chain. Sets <see cref="ServerCertificate"/> and <see cref="ServerCertificateChain"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The file holds no certificate with a private key.</exception>
    public TlsServerOptions UsePfxFile(string path, string? password)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        X509Certificate2Collection all = X509CertificateLoader.LoadPkcs12CollectionFromFile(path, password, X509KeyStorageFlags.EphemeralKeySet);
        X509Certificate2? leaf = null;
        var chain = new X509Certificate2Collection();
        foreach (X509Certificate2 certificate in all)
        {
            if (leaf is null && certificate.HasPrivateKey)
            {
                leaf = certificate;
            }
            else
            {
                chain.Add(certificate);
            }
        }
        ServerCertificate = leaf ?? throw new ArgumentException($"The file '{path}' holds no certificate with a private key.", nameof(path));
        ServerPrivateKey = null;
        ServerCertificateChain = chain.Count == 0 ? null : chain;
        return this;
    }

    private static AsymmetricAlgorithm ImportPemKey(string pem, string? password, string keyPath)
    {
        // Try RSA, then EC; each throws ArgumentException for a PEM it cannot use.
        var rsa = RSA.Create();
        try
        {
            if (password is null)
            {
                rsa.ImportFromPem(pem);
            }
            else
            {
                rsa.ImportFromEncryptedPem(pem, password);
            }
            return rsa;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            rsa.Dispose();
        }
        var ec = ECDsa.Create();
        try
        {
            if (password is null)
            {
                ec.ImportFromPem(pem);
            }
            else
            {
                ec.ImportFromEncryptedPem(pem, password);
            }
            return ec;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            ec.Dispose();
            throw new ArgumentException($"The file '{keyPath}' holds no RSA or EC private key that could be read{(password is null ? "" : " with the given password")}: {e.Message}", nameof(keyPath), e);
        }
    }
}
