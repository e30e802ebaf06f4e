// API key check for /api/*: the key comes as `Authorization: Bearer KEY` or `X-API-Key: KEY`, and is compared in
// constant time so response timing does not reveal how much of a guess was right.
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace InstaFlow.Server;

public sealed class ApiKeyCheck(string key)
{
    // Comparing hashes keeps the comparison length-independent too: FixedTimeEquals returns early on a length mismatch.
    private readonly byte[] _keyHash = SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public bool IsAuthorized(HttpRequest request)
    {
        string? given = null;
        var auth = request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) given = auth["Bearer ".Length..].Trim();
        else if (request.Headers.TryGetValue("X-API-Key", out var x)) given = x.ToString();
        return given != null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), _keyHash);
    }
}
