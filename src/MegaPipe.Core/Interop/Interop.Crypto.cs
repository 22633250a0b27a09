// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

// libcrypto (OpenSSL 3, Debian's libssl3): the error queue, memory BIOs, X509 / EVP_PKEY
// encodings, random bytes and the pieces the session-ticket key callback needs. Constants are
// checked against the installed headers by MegaPipe.Tls.Tests' OpenSslConstantsTests.
internal static unsafe partial class Interop
{
    internal const string LibCrypto = "libcrypto.so.3";

    // libcrypto constants, kept apart from Interop's own so that Core's kernel-header check (StructLayoutTests)
    // and MegaPipe.Tls.Tests' OpenSSL-header check (OpenSslConstantsTests) each see only theirs.
    internal static class Crypto
    {
        internal const int BIO_CTRL_RESET = 1;
        internal const int BIO_CTRL_PENDING = 10;
        internal const int BIO_C_SET_BUF_MEM_EOF_RETURN = 130;
        internal const int BIO_C_GET_BUF_MEM_PTR = 115; // BIO_get_mem_ptr
        internal const int X509_V_ERR_CERT_REJECTED = 28;
        internal const int X509_V_ERR_APPLICATION_VERIFICATION = 50;
        internal const int CRYPTO_EX_INDEX_SSL = 0;
        internal const int EVP_MAX_IV_LENGTH = 16;
        internal const uint OSSL_PARAM_UTF8_STRING = 4;
        internal const uint OSSL_PARAM_OCTET_STRING = 5;
        internal static readonly nuint OSSL_PARAM_UNMODIFIED = nuint.MaxValue;
    }

    // ---- library ----

    // OPENSSL_VERSION_NUMBER of the loaded library: 0xMNN00PP0L (major in the top nibble for 3.x).
    [LibraryImport(LibCrypto)]
    internal static partial ulong OpenSSL_version_num();

    // OpenSSL_version(OPENSSL_VERSION): "OpenSSL 3.0.x <date>"; a static string owned by the library.
    [LibraryImport(LibCrypto)]
    internal static partial nint OpenSSL_version(int type);

    // ---- error queue (per thread) ----

    [LibraryImport(LibCrypto)]
    internal static partial ulong ERR_get_error();

    [LibraryImport(LibCrypto)]
    internal static partial void ERR_clear_error();

    // The oldest error without removing it; 0 when the queue is empty.
    [LibraryImport(LibCrypto)]
    internal static partial ulong ERR_peek_error();

    // Writes a NUL-terminated "error:XXXXXXXX:lib:func:reason" into buf (at most len bytes).
    [LibraryImport(LibCrypto)]
    internal static partial void ERR_error_string_n(ulong e, byte* buf, nuint len);

    // ---- BIO ----

    [LibraryImport(LibCrypto)]
    internal static partial nint BIO_s_mem();

    [LibraryImport(LibCrypto)]
    internal static partial nint BIO_new(nint method);

    [LibraryImport(LibCrypto)]
    internal static partial int BIO_free(nint bio);

    [LibraryImport(LibCrypto)]
    internal static partial int BIO_write(nint bio, byte* data, int len);

    [LibraryImport(LibCrypto)]
    internal static partial int BIO_read(nint bio, byte* data, int len);

    [LibraryImport(LibCrypto)]
    internal static partial nint BIO_ctrl(nint bio, int cmd, nint larg, nint parg);

    // ---- X509 and keys ----

    [LibraryImport(LibCrypto)]
    internal static partial nint d2i_X509(nint reuse, byte** input, nint length);

    [LibraryImport(LibCrypto)]
    internal static partial int i2d_X509(nint x509, byte** output);

    [LibraryImport(LibCrypto)]
    internal static partial void X509_free(nint x509);

    // Parses PKCS#8 PrivateKeyInfo (and the traditional RSA/EC forms), guessing the key type.
    [LibraryImport(LibCrypto)]
    internal static partial nint d2i_AutoPrivateKey(nint reuse, byte** input, nint length);

    [LibraryImport(LibCrypto)]
    internal static partial void EVP_PKEY_free(nint pkey);

    // ---- certificate verification (borrowed pointers: nothing here is freed by us) ----

    [LibraryImport(LibCrypto)]
    internal static partial nint X509_STORE_CTX_get0_cert(nint storeCtx);

    [LibraryImport(LibCrypto)]
    internal static partial nint X509_STORE_CTX_get0_untrusted(nint storeCtx);

    [LibraryImport(LibCrypto)]
    internal static partial nint X509_STORE_CTX_get_ex_data(nint storeCtx, int index);

    [LibraryImport(LibCrypto)]
    internal static partial void X509_STORE_CTX_set_error(nint storeCtx, int error);

    // STACK_OF(X509) accessors: the typed sk_X509_* functions are static inline wrappers of these.
    [LibraryImport(LibCrypto)]
    internal static partial int OPENSSL_sk_num(nint stack);

    [LibraryImport(LibCrypto)]
    internal static partial nint OPENSSL_sk_value(nint stack, int index);

    // ---- ex_data ----

    [LibraryImport(LibCrypto)]
    internal static partial int CRYPTO_get_ex_new_index(int classIndex, nint argl, nint argp, nint newFunc, nint dupFunc, nint freeFunc);

    // ---- random, ciphers, MACs ----

    [LibraryImport(LibCrypto)]
    internal static partial int RAND_bytes(byte* buf, int num);

    [LibraryImport(LibCrypto)]
    internal static partial void OPENSSL_cleanse(void* ptr, nuint len);

    [LibraryImport(LibCrypto)]
    internal static partial nint EVP_CIPHER_fetch(nint libCtx, byte* algorithm, byte* properties);

    [LibraryImport(LibCrypto)]
    internal static partial int EVP_EncryptInit_ex(nint ctx, nint cipher, nint engine, byte* key, byte* iv);

    [LibraryImport(LibCrypto)]
    internal static partial int EVP_DecryptInit_ex(nint ctx, nint cipher, nint engine, byte* key, byte* iv);

    [LibraryImport(LibCrypto)]
    internal static partial int EVP_MAC_CTX_set_params(nint ctx, OSSL_PARAM* parameters);

    // openssl/buffer.h: struct buf_mem_st, a memory BIO's buffer (read through BIO_get_mem_ptr, never written).
    [StructLayout(LayoutKind.Sequential)]
    internal struct BUF_MEM
    {
        public nuint length;
        public byte* data;
        public nuint max;
        public nuint flags;
    }

    // openssl/core.h: struct ossl_param_st. The array ends with an entry whose key is NULL.
    [StructLayout(LayoutKind.Sequential)]
    internal struct OSSL_PARAM
    {
        public byte* key;
        public uint data_type;
        public void* data;
        public nuint data_size;
        public nuint return_size;
    }
}
