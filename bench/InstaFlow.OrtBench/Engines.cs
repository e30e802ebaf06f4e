// The two engines behind one interface: each stage takes and returns plain float arrays, so both are timed doing the
// same thing (inputs in, output copied out) and their outputs can be compared element by element.
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using Microsoft.ML.OnnxRuntime;

namespace InstaFlow.OrtBench;

public interface IStageEngine : IDisposable
{
    string Name { get; }
    /// <summary>ids [1,77] -> last_hidden_state [1,77,768].</summary>
    float[] EncodeText(int[] ids);
    /// <summary>One InstaFlow step's UNet call: latents [1,4,64,64], context [1,77,768] -> velocity [1,4,64,64].</summary>
    float[] Velocity(float[] latents, float[] context);
    /// <summary>latents / scaling_factor [1,4,64,64] -> image [1,3,512,512] (post_quant_conv + decoder).</summary>
    float[] Decode(float[] scaledLatents);
}

/// <summary>ONNX Runtime, CPU execution provider, on the anchor kit's opset-17 exports of the diffusers modules.</summary>
public sealed class OrtEngine : IStageEngine
{
    private readonly Dictionary<SdStage, (InferenceSession Session, string[] Outputs)> _sessions = new();
    private readonly RunOptions _run = new();
    private readonly float _timestep;

    public string Name => "ONNX Runtime";
    public static string Version => OrtEnv.Instance().GetVersionString();

    // The graph inputs each network must have (name, element type, static shape), as export_sd15.py names them.
    private static readonly Dictionary<SdStage, (string Name, Type Type, int[] Shape)[]> ExpectedInputs = new()
    {
        [SdStage.TextEncoder] = [("input_ids", typeof(long), StageInputs.IdsShape)],
        [SdStage.Unet] = [("sample", typeof(float), StageInputs.LatentShape), ("timestep", typeof(float), [1]), ("encoder_hidden_states", typeof(float), StageInputs.EmbShape)],
        [SdStage.VaeDecode] = [("latent_sample", typeof(float), StageInputs.LatentShape)],
    };

    /// <param name="profilePrefix">When given, the sessions write ONNX Runtime profiles starting with this path (see EndProfiling).</param>
    public OrtEngine(string onnxDir, IEnumerable<SdStage> networks, int threads, float timestep, Action<string> log, string? profilePrefix = null)
    {
        _timestep = timestep;
        // As the anchor kit runs it: intra-op threads = ours, one inter-op thread, sequential, every graph optimization.
        using var so = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (profilePrefix != null)
        {
            // the prefix first: enabling profiling takes the prefix set at that moment
            so.ProfileOutputPathPrefix = profilePrefix;
            so.EnableProfiling = true;
        }
        try
        {
            foreach (var net in networks)
            {
                string file = Path.Combine(onnxDir, OrtBenchOptions.OnnxFiles[net]);
                var sw = System.Diagnostics.Stopwatch.StartNew();
                InferenceSession s;
                try { s = new InferenceSession(file, so); }
                catch (OnnxRuntimeException e)
                {
                    throw new BenchInputException($"{file}: ONNX Runtime cannot load it ({FirstLine(e.Message)}); re-create it with the ort-kit's recreate_anchors.sh");
                }
                _sessions[net] = (s, s.OutputNames.ToArray());
                CheckInputs(file, s, ExpectedInputs[net]);
                log($"ONNX Runtime: {file} loaded in {sw.Elapsed.TotalSeconds:F1} s");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private static void CheckInputs(string file, InferenceSession s, (string Name, Type Type, int[] Shape)[] expected)
    {
        string Want() => string.Join(", ", expected.Select(e => $"{e.Name} {e.Type.Name}[{string.Join(",", e.Shape)}]"));
        var have = s.InputMetadata;
        if (have.Count != expected.Length || expected.Any(e => !have.ContainsKey(e.Name)))
            throw new BenchInputException($"{file}: the graph's inputs are ({string.Join(", ", have.Keys)}), expected ({Want()}); export it with the ort-kit's anchor-export/export_sd15.py");
        foreach (var e in expected)
        {
            var m = have[e.Name];
            // -1 (a symbolic dimension) accepts any size; anything else must be the static size we feed.
            bool shapeOk = m.Dimensions.Length == e.Shape.Length && m.Dimensions.Zip(e.Shape).All(d => d.First < 0 || d.First == d.Second);
            if (m.ElementType != e.Type || !shapeOk)
                throw new BenchInputException($"{file}: input {e.Name} is {m.ElementType.Name}[{string.Join(",", m.Dimensions)}], expected ({Want()}); export it with the ort-kit's anchor-export/export_sd15.py");
        }
        if (s.OutputNames.Count != 1)
            throw new BenchInputException($"{file}: the graph has {s.OutputNames.Count} outputs ({string.Join(", ", s.OutputNames)}), expected one");
    }

    private static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    private float[] Run(SdStage net, string[] names, OrtValue[] values)
    {
        var (session, outputs) = _sessions[net];
        try
        {
            using var result = session.Run(_run, names, values, outputs);
            return result[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static long[] Shape(int[] s) => s.Select(x => (long)x).ToArray();

    public float[] EncodeText(int[] ids) => Run(SdStage.TextEncoder, ["input_ids"],
        [OrtValue.CreateTensorValueFromMemory(ids.Select(x => (long)x).ToArray(), Shape(StageInputs.IdsShape))]);

    public float[] Velocity(float[] latents, float[] context) => Run(SdStage.Unet, ["sample", "timestep", "encoder_hidden_states"],
    [
        OrtValue.CreateTensorValueFromMemory(latents, Shape(StageInputs.LatentShape)),
        OrtValue.CreateTensorValueFromMemory(new[] { _timestep }, [1L]),
        OrtValue.CreateTensorValueFromMemory(context, Shape(StageInputs.EmbShape)),
    ]);

    public float[] Decode(float[] scaledLatents) => Run(SdStage.VaeDecode, ["latent_sample"],
        [OrtValue.CreateTensorValueFromMemory(scaledLatents, Shape(StageInputs.LatentShape))]);

    /// <summary>Stops a profiling session's profile and returns the file it wrote.</summary>
    public string EndProfiling(SdStage net) => _sessions[net].Session.EndProfiling();

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (s, _) in _sessions.Values) s.Dispose();
        _sessions.Clear();
        _run.Dispose();
    }
}

/// <summary>InstaFlow.NET: the diffusers folder loaded the way `generate --model` loads it, run the way the pipeline runs it.</summary>
public sealed class OurEngine : IStageEngine
{
    private readonly SdComponents _model;
    private readonly FlowModel _flow;

    public string Name => "InstaFlow.NET";

    public OurEngine(string modelDir, IReadOnlyCollection<SdStage> networks, Action<string> log, bool prepack = false,
        int prepackRows = WeightPacking.DefaultMaxRows)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        _model = SdComponents.Open(new ModelSource(modelDir));
        // Networks no stage uses are released, so our resident set holds what ONNX Runtime's sessions hold.
        if (!networks.Contains(SdStage.TextEncoder)) _model.ReleaseTextEncoder();
        if (!networks.Contains(SdStage.Unet)) _model.ReleaseDenoiser();
        // (SdComponents releases only what runs before the decoder, so the VAE's weights are freed here directly.)
        if (!networks.Contains(SdStage.VaeDecode)) foreach (var p in _model.Vae.Parameters()) p.Value.Dispose();
        BufferPool.Trim();
        if (prepack) log($"InstaFlow.NET: {_model.PackWeightsOnce(prepackRows)} weights keep a pack after first use (calls of at most {prepackRows} rows)");
        // The pipeline's field: InstaFlow's convention maps flow time 0 (the one step's start) to UNet time 1000.
        _flow = new FlowModel(new DenoiserVelocity(_model.Denoiser), FlowConvention.InstaFlow);
        log($"InstaFlow.NET: {modelDir} loaded in {sw.Elapsed.TotalSeconds:F1} s");
    }

    public float[] EncodeText(int[] ids)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        return _model.TextEncoder.Forward(ids, 1).LastHiddenState.ToArray();
    }

    public float[] Velocity(float[] latents, float[] context)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var x = Tensor.FromArray(latents, StageInputs.LatentShape);
        var c = Tensor.FromArray(context, StageInputs.EmbShape);
        return _flow.Velocity(x, 0.0, c).ToArray();
    }

    public float[] Decode(float[] scaledLatents)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        return _model.Vae.Decode(Tensor.FromArray(scaledLatents, StageInputs.LatentShape)).ToArray();
    }

    /// <summary>Bytes of our weights' packs (0 without --prepack).</summary>
    public long PackedWeightBytes => _model.PackedWeightBytes;

    public void Dispose() => _model.Dispose();
}
