using System.Text.Json;
using System.Text.Json.Serialization;

// JSON written by the app, generated at compile time: reflection-based serialization is unavailable
// under native AOT and trimming (GET /json answered 500 there). Web defaults: camelCase names.
// /_diag's snapshot holds ints, longs and doubles as object values.
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(JsonMessage))]
[JsonSerializable(typeof(SortedDictionary<string, object>))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(double))]
internal sealed partial class WebAppJsonContext : JsonSerializerContext;
