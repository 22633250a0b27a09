using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace MegaPipe.Deployment.Tests;

/// <summary>
/// deploy/seccomp-io_uring.json is Docker's default seccomp profile plus the three io_uring system
/// calls, and nothing else: checked against deploy/docker-default-seccomp.json, which is checked
/// to be the upstream file byte for byte.
/// </summary>
public sealed class SeccompProfileTests
{
    // moby/profiles, tag seccomp/v0.2.3 (the version moby's vendor.mod takes), seccomp/default.json:
    // its git blob id, which `git hash-object` of the file gives.
    private const string UpstreamBlob = "ea5a494afb8d64898fa0f4f47ae0c4f5ba9cbbc9";

    private static readonly string[] IoUring = ["io_uring_enter", "io_uring_register", "io_uring_setup"];

    private static string Deploy(string file) => Path.Combine(
        typeof(SeccompProfileTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!, "deploy", file);

    [Fact]
    public void DockerDefault_IsTheUpstreamFile_AndDeniesIoUring()
    {
        byte[] bytes = File.ReadAllBytes(Deploy("docker-default-seccomp.json"));
        Assert.Equal(UpstreamBlob, GitBlobId(bytes));

        JsonObject docker = Parse("docker-default-seccomp.json");
        Assert.Equal("SCMP_ACT_ERRNO", (string?)docker["defaultAction"]);
        // None of Docker's rules names an io_uring call, so the default action (EPERM) denies them.
        string[] named = docker["syscalls"]!.AsArray().SelectMany(rule => rule!["names"]!.AsArray().Select(n => (string)n!)).ToArray();
        Assert.DoesNotContain(named, IoUring.Contains);
    }

    [Fact]
    public void IoUringProfile_AllowsTheThreeCalls_Unconditionally()
    {
        JsonObject profile = Parse("seccomp-io_uring.json");
        JsonNode[] rules = profile["syscalls"]!.AsArray().Where(rule => rule!["names"]!.AsArray().Any(n => IoUring.Contains((string)n!))).ToArray()!;
        JsonObject rule = Assert.Single(rules).AsObject();
        Assert.Equal(IoUring, rule["names"]!.AsArray().Select(n => (string)n!).Order(StringComparer.Ordinal));
        Assert.Equal("SCMP_ACT_ALLOW", (string?)rule["action"]);
        // No argument, capability or architecture condition narrows it.
        Assert.Equal(["action", "comment", "names"], rule.Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void IoUringProfile_WithoutItsIoUringRule_IsDockersDefault()
    {
        JsonObject profile = Parse("seccomp-io_uring.json");
        JsonArray syscalls = profile["syscalls"]!.AsArray();
        JsonNode rule = Assert.Single(syscalls, r => r!["names"]!.AsArray().Any(n => IoUring.Contains((string)n!)))!;
        syscalls.Remove(rule);
        Assert.True(JsonNode.DeepEquals(Parse("docker-default-seccomp.json"), profile), "deploy/seccomp-io_uring.json differs from Docker's default beyond the io_uring rule");
    }

    private static JsonObject Parse(string file) => JsonNode.Parse(File.ReadAllText(Deploy(file)))!.AsObject();

    // git's object id of a file: SHA-1 over "blob <length>\0" and the contents.
    private static string GitBlobId(byte[] contents)
    {
        byte[] header = Encoding.ASCII.GetBytes($"blob {contents.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. contents]));
    }
}
