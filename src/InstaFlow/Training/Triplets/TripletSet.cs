// A verified triplet folder loaded into memory: noise latents (X0), the teacher's final latents (X1) and the
// prompt of each triplet, checked against the manifest (sha256 of every shard and of the prompts file).
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Training.Triplets;

public sealed class TripletSet : IDisposable
{
    public required Tensor Noise { get; init; }
    public required Tensor Latents { get; init; }
    public required int[] PromptIndex { get; init; }
    public required string[] Prompts { get; init; }
    public int Count => PromptIndex.Length;

    /// <summary>Loads every shard after <see cref="TripletGenerator.Verify"/> passes; the prompts file must be the one the manifest names by sha256.</summary>
    public static TripletSet Load(string dir, string promptsPath)
    {
        var problems = TripletGenerator.Verify(dir);
        if (problems.Count > 0) throw new InvalidInputException($"{dir}: triplets are incomplete or damaged: {problems[0]}{(problems.Count > 1 ? $" (and {problems.Count - 1} more)" : "")}; rerun `instaflow triplets` for the missing shards");
        var manifestPath = Directory.GetFiles(dir, "manifest*.json").Order(StringComparer.Ordinal).First();
        var manifest = TripletManifest.Load(manifestPath);
        var (prompts, sha) = PromptsFile.Read(promptsPath);
        if (manifest.Parameters.GetValueOrDefault("prompts_sha256") != sha)
            throw new InvalidInputException($"{promptsPath}: sha256 {sha} is not the prompts file these triplets were made from ({manifest.Parameters.GetValueOrDefault("prompts_sha256")})");
        long count = long.Parse(manifest.Parameters["count"], CultureInfo.InvariantCulture);
        int shardSize = int.Parse(manifest.Parameters["shard_size"], CultureInfo.InvariantCulture);
        int files = TripletGenerator.ShardFileCount(count, shardSize);

        Tensor? noise = null, latents = null;
        var index = new int[count];
        for (int s = 0; s < files; s++)
        {
            using var f = SafeTensors.Open(Path.Combine(dir, TripletGenerator.ShardFileName(s)));
            using var scope = TensorScope.Begin();
            var n = f.ReadF32("noise"); var l = f.ReadF32("final_latents");
            var pi = f.ReadI64("prompt_index");
            var sample = n.ShapeArray()[1..];
            noise ??= Tensor.EmptyPersistent([(int)count, .. sample]);
            latents ??= Tensor.EmptyPersistent([(int)count, .. sample]);
            long first = (long)s * shardSize, row = n.Numel / n.Dim(0);
            n.Span.CopyTo(noise.Span.Slice((int)(first * row), (int)n.Numel));
            l.Span.CopyTo(latents.Span.Slice((int)(first * row), (int)l.Numel));
            for (int k = 0; k < pi.Length; k++)
            {
                if (pi[k] < 0 || pi[k] >= prompts.Length) throw new InvalidInputException($"{f.Path}: prompt index {pi[k]} outside the {prompts.Length} prompts");
                index[first + k] = (int)pi[k];
            }
            n.Dispose(); l.Dispose();
        }
        return new TripletSet { Noise = noise!, Latents = latents!, PromptIndex = index, Prompts = prompts };
    }

    public void Dispose() { Noise.Dispose(); Latents.Dispose(); }
}
