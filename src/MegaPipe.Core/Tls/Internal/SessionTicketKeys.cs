// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography;

namespace MegaPipe.Tls.Internal;

// The session ticket keys of one TlsServerContext, shared by every channel thread (hence the lock).
// A key is a 16-byte name (sent in the clear in every ticket), a 32-byte AES-256-CBC key and a 32-byte
// HMAC-SHA256 key, in OpenSSL's ticket format (RFC 5077 section 4). The current key encrypts new
// tickets; the previous one still decrypts and asks OpenSSL for a renewed ticket; anything older is
// unknown, so its tickets fall back to a full handshake. Key bytes live in pinned arrays (the GC
// never leaves copies behind), are copied to the callback's stack only for the call and zeroed there,
// and are zeroed here when retired. They are never logged.
internal sealed unsafe class SessionTicketKeys : IDisposable
{
    public const int NameLength = 16;
    private const int AesKeyLength = 32;
    private const int HmacKeyLength = 32;
    public const int KeyLength = NameLength + AesKeyLength + HmacKeyLength;

    // AES-256-CBC fetched once for the process and never freed: the callback can run on any thread at any
    // time, and an implicit fetch on every ticket would pay OpenSSL 3's provider lookup each time.
    private static readonly nint s_aes256Cbc = FetchCipher();

    private readonly Lock _lock = new();
    // name || AES key || HMAC key of the key that encrypts new tickets.
    private readonly byte[] _current = GC.AllocateArray<byte>(KeyLength, pinned: true);
    // The key before it (decrypt only); valid when _hasPrevious.
    private readonly byte[] _previous = GC.AllocateArray<byte>(KeyLength, pinned: true);
    private readonly TimeProvider _time;
    // The rotation interval in _time's timestamp units.
    private readonly long _interval;
    private bool _hasPrevious;
    // _time timestamp at which the current key is retired (checked on every ticket operation).
    private long _nextRotation;
    private bool _disposed;

    public SessionTicketKeys(TimeProvider time, TimeSpan interval)
    {
        // Fetches the cipher now, so a failure shows at startup rather than in a handshake.
        GC.KeepAlive(s_aes256Cbc);
        _time = time;
        _interval = (long)Math.Min(interval.TotalSeconds * time.TimestampFrequency, long.MaxValue / 2);
        RandomNumberGenerator.Fill(_current);
        _nextRotation = _time.GetTimestamp() + _interval;
    }

    // Rotations so far (tests and diagnostics).
    public int Rotations { get; private set; }

    public void Rotate()
    {
        lock (_lock)
        {
            RotateUnsynchronized();
        }
    }

    // enc = 1: fills key_name and iv and sets up the cipher and MAC with the current key. Returns 1, or 0 for "no ticket".
    public int Encrypt(byte* keyName, byte* iv, nint cipherContext, nint macContext)
    {
        byte* key = stackalloc byte[KeyLength];
        try
        {
            lock (_lock)
            {
                if (_disposed)
                {
                    return 0;
                }
                RotateIfDueUnsynchronized();
                _current.CopyTo(new Span<byte>(key, KeyLength));
            }
            if (Interop.RAND_bytes(iv, Interop.Crypto.EVP_MAX_IV_LENGTH) != 1)
            {
                return 0;
            }
            new ReadOnlySpan<byte>(key, NameLength).CopyTo(new Span<byte>(keyName, NameLength));
            if (Interop.EVP_EncryptInit_ex(cipherContext, s_aes256Cbc, 0, key + NameLength, iv) != 1 || !SetMacKey(macContext, key + NameLength + AesKeyLength))
            {
                return -1;
            }
            return 1;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(new Span<byte>(key, KeyLength));
        }
    }

    // enc = 0: finds the key named key_name. Returns 1 (current key), 2 (previous key: renew the ticket) or 0 (unknown: full handshake).
    public int Decrypt(byte* keyName, byte* iv, nint cipherContext, nint macContext)
    {
        byte* key = stackalloc byte[KeyLength];
        try
        {
            int result;
            var name = new ReadOnlySpan<byte>(keyName, NameLength);
            lock (_lock)
            {
                if (_disposed)
                {
                    return 0;
                }
                RotateIfDueUnsynchronized();
                if (name.SequenceEqual(_current.AsSpan(0, NameLength)))
                {
                    _current.CopyTo(new Span<byte>(key, KeyLength));
                    result = 1;
                }
                else if (_hasPrevious && name.SequenceEqual(_previous.AsSpan(0, NameLength)))
                {
                    _previous.CopyTo(new Span<byte>(key, KeyLength));
                    result = 2;
                }
                else
                {
                    return 0;
                }
            }
            if (!SetMacKey(macContext, key + NameLength + AesKeyLength) || Interop.EVP_DecryptInit_ex(cipherContext, s_aes256Cbc, 0, key + NameLength, iv) != 1)
            {
                return -1;
            }
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(new Span<byte>(key, KeyLength));
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _hasPrevious = false;
            CryptographicOperations.ZeroMemory(_current);
            CryptographicOperations.ZeroMemory(_previous);
        }
    }

    private void RotateIfDueUnsynchronized()
    {
        if (_time.GetTimestamp() >= _nextRotation)
        {
            RotateUnsynchronized();
        }
    }

    private void RotateUnsynchronized()
    {
        if (_disposed)
        {
            return;
        }
        // Copying over _previous overwrites (zeroes) the key retired now.
        _current.CopyTo(_previous);
        _hasPrevious = true;
        RandomNumberGenerator.Fill(_current);
        _nextRotation = _time.GetTimestamp() + _interval;
        Rotations++;
    }

    // HMAC-SHA256 keyed with hmacKey (OSSL_MAC_PARAM_KEY, OSSL_MAC_PARAM_DIGEST); the MAC context copies the key.
    private static bool SetMacKey(nint macContext, byte* hmacKey)
    {
        fixed (byte* keyParameter = "key\0"u8)
        fixed (byte* digestParameter = "digest\0"u8)
        fixed (byte* digest = "SHA256\0"u8)
        {
            Interop.OSSL_PARAM* parameters = stackalloc Interop.OSSL_PARAM[3];
            parameters[0] = new Interop.OSSL_PARAM { key = keyParameter, data_type = Interop.Crypto.OSSL_PARAM_OCTET_STRING, data = hmacKey, data_size = HmacKeyLength, return_size = Interop.Crypto.OSSL_PARAM_UNMODIFIED };
            parameters[1] = new Interop.OSSL_PARAM { key = digestParameter, data_type = Interop.Crypto.OSSL_PARAM_UTF8_STRING, data = digest, data_size = 6, return_size = Interop.Crypto.OSSL_PARAM_UNMODIFIED };
            parameters[2] = default;
            return Interop.EVP_MAC_CTX_set_params(macContext, parameters) == 1;
        }
    }

    private static nint FetchCipher()
    {
        fixed (byte* name = "AES-256-CBC\0"u8)
        {
            nint cipher = Interop.EVP_CIPHER_fetch(0, name, null);
            if (cipher == 0)
            {
                TlsThrowHelper.ThrowOpenSsl("EVP_CIPHER_fetch(AES-256-CBC)");
            }
            return cipher;
        }
    }
}
