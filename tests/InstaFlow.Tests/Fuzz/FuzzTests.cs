// Seeded fuzzing of every input the project reads: safetensors files, PNGs, config.json files, tokenizer files,
// command lines and API bodies. Each case must end in success or InvalidInputException (the bad-input contract),
// never another exception, and the process must stay within a memory bound. Over 1,000 cases, well under 2 minutes.
using System.Diagnostics;
using System.Net;
using System.Text;
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Tensors;
using InstaFlow.Tests.Serve;

namespace InstaFlow.Tests.Fuzz;

[Collection(ProcessWide.Name)]
public sealed class FuzzTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-fuzz-").FullName;
    private static string Tiny => Path.Combine(TestUtil.Fixtures, "tiny-sd15");

    /// <summary>A case may not leave the process above this (the tiny model and the test host fit easily).</summary>
    private const long MaxWorkingSetBytes = 3L << 30;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs one case: success and InvalidInputException pass; any other exception fails naming the case.</summary>
    private static void Case(string what, int i, Action run, params Type[] alsoAllowed)
    {
        try { run(); }
        catch (InvalidInputException) { }
        catch (Exception e) when (alsoAllowed.Contains(e.GetType())) { }
        catch (Exception e) { Assert.Fail($"{what} case {i}: {e.GetType().Name}: {e.Message}\n{e}"); }
        Assert.True(Environment.WorkingSet < MaxWorkingSetBytes, $"{what} case {i}: working set {Environment.WorkingSet >> 20} MB");
    }

    /// <summary>Random damage to a byte array: flips, truncation, insertions, and copies of other spans.</summary>
    private static byte[] Mutate(Random rng, byte[] src)
    {
        var b = new List<byte>(src);
        int edits = 1 + rng.Next(4);
        for (int e = 0; e < edits && b.Count > 0; e++)
        {
            int at = rng.Next(b.Count);
            switch (rng.Next(5))
            {
                case 0: b[at] = (byte)rng.Next(256); break;
                case 1: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 2: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(16))); break;
                case 3: b.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => (byte)rng.Next(256))); break;
                default: b.RemoveRange(at, b.Count - at); break;
            }
        }
        return b.ToArray();
    }

    // The PyTorch checkpoint reader's unpickler and containers (zip and legacy) on damaged copies of the torch-written
    // fixtures: success or one InvalidInputException, never another exception, a hang or unbounded memory.
    [Fact]
    public void TorchCheckpoints_MutatedFiles_CleanErrorOrLoad()
    {
        var sources = new[] { "unet_state_dict.pt", "ldm_legacy.ckpt", "dW.pt" }
            .Select(f => File.ReadAllBytes(Path.Combine(TestUtil.Fixtures, "single_file", f))).ToArray();
        var rng = new Random(1301);
        for (int i = 0; i < 150; i++)
        {
            var src = sources[i % sources.Length];
            byte[] m = Mutate(rng, src);
            if (i % 2 == 0)
            {
                // damage near the start too, where the pickle opcodes and the zip's first records are
                m = (byte[])src.Clone();
                for (int k = 0; k < 1 + rng.Next(4); k++) m[rng.Next(Math.Min(m.Length, 4096))] = (byte)rng.Next(256);
            }
            var path = Path.Combine(_dir, $"t{i}.pt");
            File.WriteAllBytes(path, m);
            Case("torch checkpoint", i, () =>
            {
                using var scope = TensorScope.Begin();
                using var w = WeightsFile.Open(path);
                foreach (var t in w.Tensors.Where(t => t.IsFloat))
                {
                    w.ReadF32(t.Name).Dispose();
                    using var stored = w.ReadStored(t.Name); // F16/BF16 kept as views of the mapping
                    stored.ToArray();
                }
            });
        }
    }

    [Fact]
    public void SafeTensors_MutatedFiles_CleanErrorOrLoad()
    {
        using var scope = TensorScope.Begin();
        string good = Path.Combine(_dir, "good.safetensors");
        SafeTensors.Save(good, new Dictionary<string, Tensor> { ["a"] = TestUtil.Random(1, 3, 4), ["b.weight"] = TestUtil.Random(2, 5) },
            SafeTensorDType.F16, new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(good);
        long headerLen = BitConverter.ToInt64(bytes);
        var rng = new Random(1201);
        for (int i = 0; i < 400; i++)
        {
            byte[] m;
            if (i % 4 == 0)
            {
                // Damage inside the JSON header only, where the validation rules live.
                m = (byte[])bytes.Clone();
                int at = 8 + rng.Next((int)headerLen);
                m[at] = "{}[],:\"0123456789-.eE \\u\u00ff"u8.ToArray()[rng.Next(26)];
            }
            else if (i % 4 == 1)
            {
                m = (byte[])bytes.Clone();
                BitConverter.TryWriteBytes(m, headerLen + rng.Next(-9, 10)); // header length off by a little
            }
            else m = Mutate(rng, bytes);
            string path = Path.Combine(_dir, $"m{i}.safetensors");
            File.WriteAllBytes(path, m);
            Case("safetensors", i, () =>
            {
                using var f = SafeTensors.Open(path);
                foreach (var t in f.Tensors)
                {
                    f.ReadF32(t.Name).Dispose();
                    using var stored = f.ReadStored(t.Name); // the F16 seed's tensors as half views of the mapping
                    stored.ToArray();
                }
            });
        }
    }

    [Fact]
    public void Png_MutatedFiles_CleanErrorOrDecode()
    {
        var rng = new Random(1202);
        var pixels = new byte[17 * 9 * 4];
        rng.NextBytes(pixels);
        var good = Png.Encode(17, 9, 4, pixels, new Dictionary<string, string> { ["prompt"] = "a café 🐱", ["seed"] = "4" });
        var withZtxt = IO.PngChunks.WithChunks(IO.PngChunks.ZText("comment", 5000));
        for (int i = 0; i < 300; i++)
        {
            var src = i % 2 == 0 ? good : withZtxt;
            var m = Mutate(rng, src);
            // NotSupportedException is the decoder's "interlaced PNG" refusal, shown to users as one line too.
            Case("png", i, () => Png.Decode(m, $"m{i}.png"), typeof(NotSupportedException));
            Case("image", i, () => ImageFile.Decode(m, $"m{i}.png"), typeof(NotSupportedException));
        }
    }

    [Fact]
    public void Configs_RandomValues_CleanErrorOrLoad()
    {
        var rng = new Random(1203);
        string[] keys = ["layers_per_block", "block_out_channels", "attention_head_dim", "num_attention_heads", "sample_size", "in_channels",
            "norm_num_groups", "cross_attention_dim", "scaling_factor", "latent_channels", "num_hidden_layers", "hidden_size", "vocab_size",
            "max_position_embeddings", "intermediate_size", "down_block_types", "up_block_types", "transformer_layers_per_block", "beta_start", "beta_end",
            "num_train_timesteps", "_class_name", "prediction_type", "timestep_spacing"];
        string[] values = ["0", "-1", "1", "3", "2147483647", "9223372036854775807", "1e308", "-1e308", "0.5", "NaN", "Infinity", "-Infinity", "null",
            "true", "\"x\"", "\"\\ud800\"", "[]", "[0]", "[1, 2]", "[32, 64]", "[2147483647, 2147483647]", "{}", "[[1]]", "[\"CrossAttnDownBlock2D\"]"];
        string[] components = ["unet", "vae", "text_encoder", "scheduler"];
        for (int i = 0; i < 250; i++)
        {
            string component = components[rng.Next(components.Length)], key = keys[rng.Next(keys.Length)], value = values[rng.Next(values.Length)];
            var dir = Directory.CreateDirectory(Path.Combine(_dir, $"c{i}")).FullName;
            Case("config", i, () => Models.ConfigBoundsTests.LoadWith(dir, component, key, value), typeof(NotSupportedException));
        }
    }

    [Fact]
    public void Tokenizer_MutatedFiles_CleanErrorOrLoad()
    {
        var rng = new Random(1204);
        var vocab = File.ReadAllBytes(Path.Combine(Tiny, "tokenizer", "vocab.json"));
        var merges = File.ReadAllBytes(Path.Combine(Tiny, "tokenizer", "merges.txt"));
        string[] vocabs = ["{}", "[]", "{\"a\": 2147483647}", "{\"a\": -1}", "{\"a\": \"x\"}", "{\"\\ud800\": 1}", "null", "{\"<|endoftext|>\": 1e9}"];
        for (int i = 0; i < 60; i++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(_dir, $"t{i}")).FullName;
            foreach (var f in Directory.GetFiles(Path.Combine(Tiny, "tokenizer"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            if (i % 3 == 0) File.WriteAllText(Path.Combine(dir, "vocab.json"), vocabs[rng.Next(vocabs.Length)]);
            else if (i % 3 == 1) File.WriteAllBytes(Path.Combine(dir, "merges.txt"), Mutate(rng, merges[..Math.Min(merges.Length, 4000)]));
            else File.WriteAllBytes(Path.Combine(dir, "vocab.json"), Mutate(rng, vocab));
            Case("tokenizer", i, () =>
            {
                var tok = ClipTokenizer.FromDirectory(dir);
                tok.Encode("a red fox, 🦊 jumps");
            });
        }
    }

    [Fact]
    public void Cli_RandomArguments_NeverABug()
    {
        var rng = new Random(1205);
        string[] commands = ["generate", "invert", "triplets", "tokenize", "serve", "sample", "eval", "train", "straightness", "bench", "nonsense"];
        string[] options = ["--steps", "--guidance", "--seed", "--width", "--height", "--batch", "--threads", "--lora-scale", "--count", "--port",
            "--host", "--max-queue", "--iterations", "--variant", "-o", "--model", "--image", "--max-work", "--shard"];
        string[] values = ["0", "-1", "1", "NaN", "1e40", "9223372036854775807", "18446744073709551616", "abc", "", "::ffff:127.0.0.1", "/dev/null",
            "/nonexistent/dir/x.png", "0/0", "3/2", "--", new string('x', 300)];
        int bugs = 0;
        var failures = new StringBuilder();
        for (int i = 0; i < 150; i++)
        {
            var args = new List<string> { commands[rng.Next(commands.Length)] };
            for (int k = rng.Next(4); k > 0; k--) { args.Add(options[rng.Next(options.Length)]); args.Add(values[rng.Next(values.Length)]); }
            // Always some invalid value so no case starts a long job or a server.
            args.AddRange(["--steps", "0"]);
            var (code, _, err) = Cli.CliRunner.Run([.. args]);
            if (code is not (0 or 1 or 2)) { bugs++; failures.AppendLine($"case {i}: instaflow {string.Join(' ', args)} -> {code}: {err.Split('\n')[0]}"); }
        }
        Assert.True(bugs == 0, failures.ToString());
    }

    [Fact]
    public async Task Api_RandomBodies_NeverA500()
    {
        await using var run = await RunningServer.StartAsync();
        var rng = new Random(1206);
        string[] fields = ["prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "batch", "control_image", "control_scale", "x"];
        string[] values = ["\"a cat\"", "\"\"", "\"\\ud800\"", "\"\\udfff\\ud800\"", "0", "-1", "1", "64", "2048", "1e999", "NaN", "null", "true", "[]", "{}",
            "18446744073709551616", "3.5", "\"64\"", "\"iVBORw0KGgo=\"", "\"not base64!\""];
        var failures = new StringBuilder();
        for (int i = 0; i < 150; i++)
        {
            var sb = new StringBuilder("{\"prompt\": \"a fuzz\"");
            for (int k = rng.Next(4); k > 0; k--) sb.Append($", \"{fields[rng.Next(fields.Length)]}\": {values[rng.Next(values.Length)]}");
            sb.Append(", \"width\": 64, \"height\": 64}");
            byte[] body = Encoding.UTF8.GetBytes(sb.ToString());
            if (i % 5 == 0) body = Mutate(rng, body);
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var resp = await run.Client.PostAsync("api/generate", content);
            if ((int)resp.StatusCode >= 500) failures.AppendLine($"case {i}: {Encoding.UTF8.GetString(body)} -> {(int)resp.StatusCode}");
            else if (resp.StatusCode != HttpStatusCode.OK && !(await resp.Content.ReadAsStringAsync()).Contains("\"error\""))
                failures.AppendLine($"case {i}: {(int)resp.StatusCode} without a JSON error body");
        }
        Assert.True(failures.Length == 0, failures.ToString());
        Assert.True(Environment.WorkingSet < MaxWorkingSetBytes, $"working set {Environment.WorkingSet >> 20} MB");
    }
}
