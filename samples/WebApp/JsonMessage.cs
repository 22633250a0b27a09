// The body of GET /json: {"message":"Hello, World!"} (TechEmpower's JSON test).
internal sealed record JsonMessage(string Message);
