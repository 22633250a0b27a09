// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MegaPipe.Transport.Internal;

// The connection's features, the connection itself being the collection: the ones the transport
// and Kestrel set on every connection have a field each, looked up by type comparison, and any
// other goes into a dictionary made on first use. A FeatureCollection (a dictionary for all) cost
// about 2% of a server's CPU under Connection: close: eight insertions per connection, and every
// lookup Kestrel makes while it sets the connection up is a hash probe.
internal sealed partial class MegaPipeConnection : IFeatureCollection
{
    private object? _idFeature;
    private object? _transportFeature;
    private object? _itemsFeature;
    private object? _memoryPoolFeature;
    private object? _lifetimeFeature;
    private object? _endPointFeature;
    private object? _channelFeature;
    private object? _fileReaderFeature;
    private object? _metricsTagsFeature;
    private object? _lifetimeNotificationFeature;
    private object? _tlsConnectionFeature;
    private object? _tlsHandshakeFeature;
    private object? _tlsApplicationProtocolFeature;
    private object? _socketFeature;
    // One more feature of any other type, so the one Kestrel adds to every connection (its
    // internal metrics context) needs no dictionary; then every other feature, by type.
    private Type? _spareFeatureType;
    private object? _spareFeature;
    private Dictionary<Type, object>? _otherFeatures;
    private int _featureRevision;

    private void InitializeFeatures()
    {
        _idFeature = this;
        _transportFeature = this;
        _itemsFeature = this;
        _memoryPoolFeature = this;
        _lifetimeFeature = this;
        _endPointFeature = this;
    }

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _featureRevision;

    object? IFeatureCollection.this[Type key]
    {
        get
        {
            ArgumentNullException.ThrowIfNull(key);
            ref object? slot = ref Slot(key);
            if (!Unsafe.IsNullRef(ref slot))
            {
                return slot;
            }
            if (key == _spareFeatureType)
            {
                return _spareFeature;
            }
            return _otherFeatures is not null && _otherFeatures.TryGetValue(key, out object? value) ? value : null;
        }
        set
        {
            ArgumentNullException.ThrowIfNull(key);
            _featureRevision++;
            ref object? slot = ref Slot(key);
            if (!Unsafe.IsNullRef(ref slot))
            {
                slot = value;
            }
            else if (key == _spareFeatureType || (_spareFeatureType is null && _otherFeatures?.ContainsKey(key) != true))
            {
                // The spare slot: this type's, or free (a type in the dictionary stays there).
                _spareFeatureType = value is null ? null : key;
                _spareFeature = value;
            }
            else if (value is null)
            {
                _otherFeatures?.Remove(key);
            }
            else
            {
                (_otherFeatures ??= new Dictionary<Type, object>())[key] = value;
            }
        }
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)((IFeatureCollection)this)[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => ((IFeatureCollection)this)[typeof(TFeature)] = instance;

    // The field of a feature type that has one, or a null reference.
    private ref object? Slot(Type key)
    {
        if (key == typeof(IConnectionIdFeature))
        {
            return ref _idFeature;
        }
        if (key == typeof(IConnectionTransportFeature))
        {
            return ref _transportFeature;
        }
        if (key == typeof(IConnectionItemsFeature))
        {
            return ref _itemsFeature;
        }
        if (key == typeof(IMemoryPoolFeature))
        {
            return ref _memoryPoolFeature;
        }
        if (key == typeof(IConnectionLifetimeFeature))
        {
            return ref _lifetimeFeature;
        }
        if (key == typeof(IConnectionEndPointFeature))
        {
            return ref _endPointFeature;
        }
        if (key == typeof(IMegaPipeChannelFeature))
        {
            return ref _channelFeature;
        }
        if (key == typeof(IMegaPipeFileReader))
        {
            return ref _fileReaderFeature;
        }
        if (key == typeof(IConnectionMetricsTagsFeature))
        {
            return ref _metricsTagsFeature;
        }
        if (key == typeof(IConnectionLifetimeNotificationFeature))
        {
            return ref _lifetimeNotificationFeature;
        }
        if (key == typeof(ITlsConnectionFeature))
        {
            return ref _tlsConnectionFeature;
        }
        if (key == typeof(ITlsHandshakeFeature))
        {
            return ref _tlsHandshakeFeature;
        }
        if (key == typeof(ITlsApplicationProtocolFeature))
        {
            return ref _tlsApplicationProtocolFeature;
        }
        if (key == typeof(IConnectionSocketFeature))
        {
            return ref _socketFeature;
        }
        return ref Unsafe.NullRef<object?>();
    }

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator() => EnumerateFeatures().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => EnumerateFeatures().GetEnumerator();

    private IEnumerable<KeyValuePair<Type, object>> EnumerateFeatures()
    {
        foreach (Type type in s_slotTypes)
        {
            if (Slot(type) is { } feature)
            {
                yield return new KeyValuePair<Type, object>(type, feature);
            }
        }
        if (_spareFeatureType is not null)
        {
            yield return new KeyValuePair<Type, object>(_spareFeatureType, _spareFeature!);
        }
        if (_otherFeatures is not null)
        {
            foreach (KeyValuePair<Type, object> pair in _otherFeatures)
            {
                yield return pair;
            }
        }
    }

    [SuppressMessage("Performance", "CA1825", Justification = "A fixed list.")]
    private static readonly Type[] s_slotTypes =
    [
        typeof(IConnectionIdFeature), typeof(IConnectionTransportFeature), typeof(IConnectionItemsFeature), typeof(IMemoryPoolFeature),
        typeof(IConnectionLifetimeFeature), typeof(IConnectionEndPointFeature), typeof(IMegaPipeChannelFeature), typeof(IMegaPipeFileReader),
        typeof(IConnectionMetricsTagsFeature), typeof(IConnectionLifetimeNotificationFeature),
        typeof(ITlsConnectionFeature), typeof(ITlsHandshakeFeature), typeof(ITlsApplicationProtocolFeature), typeof(IConnectionSocketFeature),
    ];
}
