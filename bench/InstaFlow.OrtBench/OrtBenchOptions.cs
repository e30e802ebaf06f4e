// Command line of InstaFlow.OrtBench and its checks against the file system. Only BCL types, so the test project can
// compile this file on its own without pulling ONNX Runtime in.
using System.Globalization;

namespace InstaFlow.OrtBench;

/// <summary>Bad input (arguments, missing files, ONNX graphs that do not fit): one line for the user, exit code 2.</summary>
public sealed class BenchInputException(string message) : Exception(message);

public enum SdStage { TextEncoder, Unet, VaeDecode, Image }

public enum BenchEngines { Both, Ort, Ours }

public sealed record OrtBenchOptions
{
    public const string Usage =
        "usage: InstaFlow.OrtBench --onnx DIR --model SD15_FOLDER [--ref REF.safetensors] [--pairs 5] [--threads N]\n" +
        "                          [--stages te,unet,vae,image] [--engine both|ort|ours] [--prepack] [--prepack-rows N] [--profile]\n" +
        "  --onnx     folder with text_encoder/model.onnx, unet/model.onnx (+ model.onnx.data), vae_decoder/model.onnx\n" +
        "  --model    the diffusers SD-1.5 folder those graphs were exported from (our engine loads it)\n" +
        "  --ref      reference inputs/outputs (input_ids, init_latents, timestep, prompt_embeds, final_latents, v_pred, image_raw)\n" +
        "  --pairs    timed (ONNX Runtime, ours) pairs per stage after two warm-up pairs (default 5)\n" +
        "  --threads  ONNX Runtime intra-op threads = our Par.Threads (default: all cores)\n" +
        "  --engine   ort or ours: that engine alone (e.g. under /usr/bin/time -v for its peak RSS)\n" +
        "  --prepack  our engine keeps its weights packed after first use (SdComponents.PackWeightsOnce), as ONNX Runtime does\n" +
        "  --prepack-rows N  with --prepack, keep packs for calls of up to N rows (default 1024; 1048576 packs every layer,\n" +
        "             the 64x64 UNet level and the VAE decoder too, for more memory)\n" +
        "  --profile  after the timed pairs, one more call of each network per engine split by operator type (ONNX Runtime's\n" +
        "             profiler, in a session of its own) and by kernel (ours)";

    /// <summary>ONNX file of each network inside the --onnx folder, as the anchor kit's export writes them.</summary>
    public static readonly IReadOnlyDictionary<SdStage, string> OnnxFiles = new Dictionary<SdStage, string>
    {
        [SdStage.TextEncoder] = Path.Combine("text_encoder", "model.onnx"),
        [SdStage.Unet] = Path.Combine("unet", "model.onnx"),
        [SdStage.VaeDecode] = Path.Combine("vae_decoder", "model.onnx"),
    };

    public required string OnnxDir { get; init; }
    public string? ModelDir { get; init; }
    public string? RefFile { get; init; }
    public int Pairs { get; init; } = 5;
    public int Threads { get; init; } = Environment.ProcessorCount;
    public static readonly IReadOnlyList<SdStage> AllStages = [SdStage.TextEncoder, SdStage.Unet, SdStage.VaeDecode, SdStage.Image];
    public IReadOnlyList<SdStage> Stages { get; init; } = AllStages;
    public BenchEngines Engines { get; init; } = BenchEngines.Both;
    /// <summary>Our engine packs its weights once (made in the first warm-up pair) instead of on every call.</summary>
    public bool Prepack { get; init; }
    /// <summary>Largest call (rows) whose weights keep a pack under --prepack.</summary>
    public int PrepackRows { get; init; } = InstaFlow.Nn.WeightPacking.DefaultMaxRows;
    /// <summary>After the timings, one profiled call of each network per engine, split by operator type / kernel.</summary>
    public bool Profile { get; init; }
    public bool RunsOrt => Engines != BenchEngines.Ours;
    public bool RunsOurs => Engines != BenchEngines.Ort;

    /// <summary>The networks the chosen stages need (the whole image needs all three).</summary>
    public IReadOnlyList<SdStage> Networks =>
        Stages.Contains(SdStage.Image) ? [SdStage.TextEncoder, SdStage.Unet, SdStage.VaeDecode] : Stages.Distinct().ToList();

    public static string StageName(SdStage s) => s switch
    {
        SdStage.TextEncoder => "te",
        SdStage.Unet => "unet",
        SdStage.VaeDecode => "vae",
        _ => "image",
    };

    /// <summary>Parses the arguments; null means --help was asked for. Throws BenchInputException on bad arguments.</summary>
    public static OrtBenchOptions? Parse(IReadOnlyList<string> args)
    {
        string? onnx = null, model = null, reference = null;
        int pairs = 5, threads = Environment.ProcessorCount;
        var stages = new List<SdStage>();
        var engines = BenchEngines.Both;
        bool prepack = false, profile = false;
        int prepackRows = InstaFlow.Nn.WeightPacking.DefaultMaxRows;
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a is "-h" or "--help") return null;
            string Value() => i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i] : throw new BenchInputException($"{a} needs a value (see --help)");
            switch (a)
            {
                case "--onnx": onnx = Value(); break;
                case "--prepack": prepack = true; break;
                case "--prepack-rows": prepackRows = PositiveInt(a, Value()); break;
                case "--profile": profile = true; break;
                case "--model": model = Value(); break;
                case "--ref": reference = Value(); break;
                case "--pairs": pairs = PositiveInt(a, Value()); break;
                case "--threads": threads = PositiveInt(a, Value()); break;
                case "--stages":
                    stages.Clear();
                    foreach (var s in Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        stages.Add(s switch
                        {
                            "te" or "text" => SdStage.TextEncoder,
                            "unet" => SdStage.Unet,
                            "vae" => SdStage.VaeDecode,
                            "image" => SdStage.Image,
                            _ => throw new BenchInputException($"--stages: unknown stage \"{s}\"; use te, unet, vae and/or image, comma-separated"),
                        });
                    if (stages.Count == 0) throw new BenchInputException("--stages is empty; use te, unet, vae and/or image, comma-separated");
                    break;
                case "--engine":
                    engines = Value() switch
                    {
                        "both" => BenchEngines.Both,
                        "ort" => BenchEngines.Ort,
                        "ours" => BenchEngines.Ours,
                        var e => throw new BenchInputException($"--engine: unknown engine \"{e}\"; use both, ort or ours"),
                    };
                    break;
                default: throw new BenchInputException($"unknown argument \"{a}\" (see --help)");
            }
        }
        if (prepackRows != InstaFlow.Nn.WeightPacking.DefaultMaxRows && !prepack)
            throw new BenchInputException("--prepack-rows applies to --prepack; add --prepack");
        if (onnx == null && engines != BenchEngines.Ours) throw new BenchInputException($"--onnx DIR is required (the folder of the exported ONNX graphs; see --help)");
        // Our engine needs the folder; ONNX Runtime alone needs it only for the tokenizer when no reference gives the ids.
        if (model == null && (engines != BenchEngines.Ort || reference == null))
            throw new BenchInputException($"--model SD15_FOLDER is required (the diffusers folder the ONNX graphs were exported from; see --help)");
        return new OrtBenchOptions
        {
            OnnxDir = onnx ?? "", ModelDir = model, RefFile = reference, Pairs = pairs, Threads = threads,
            Stages = stages.Count > 0 ? stages.Distinct().ToList() : AllStages, Engines = engines, Prepack = prepack, PrepackRows = prepackRows, Profile = profile,
        };
    }

    /// <summary>Checks that every folder and file the chosen stages need exists, naming the first one missing and the fix.</summary>
    public void Validate()
    {
        if (RunsOrt)
        {
            if (!Directory.Exists(OnnxDir))
                throw new BenchInputException($"--onnx: folder not found: {OnnxDir} (make it with the ort-kit's recreate_anchors.sh; it is artifacts/onnx there)");
            foreach (var net in Networks)
            {
                string f = Path.Combine(OnnxDir, OnnxFiles[net]);
                if (!File.Exists(f))
                    throw new BenchInputException($"{f}: not found; --onnx must hold {string.Join(", ", OnnxFiles.Values)} (the ort-kit's artifacts/onnx)");
            }
        }
        if (ModelDir != null)
        {
            if (!Directory.Exists(ModelDir))
                throw new BenchInputException($"--model: folder not found: {ModelDir} (a diffusers SD-1.5 folder, e.g. the ort-kit's sd15/)");
            if (!File.Exists(Path.Combine(ModelDir, "model_index.json")))
                throw new BenchInputException($"{Path.Combine(ModelDir, "model_index.json")}: not found; --model must be a diffusers folder (model_index.json, text_encoder/, unet/, vae/, tokenizer/)");
        }
        if (RefFile != null && !File.Exists(RefFile))
            throw new BenchInputException($"--ref: file not found: {RefFile} (the ort-kit writes it as artifacts/ref/ref.safetensors; or drop --ref for deterministic inputs)");
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 1
            ? n : throw new BenchInputException($"{name} must be a whole number of at least 1, got \"{value}\"");
}
